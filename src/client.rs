//! The admin API client (reqwest): the CLI's only way to reach a server's data. One method per
//! route, with its query as a type; [`pages`] reads a list that comes a page at a time. Turns
//! every failure into a sentence with a hint naming what to run next.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    CreateKey, CreateWorkspace, CreatedKeyResponse, ErrorResponse, EventsResponse,
    FoundKeysResponse, ImportResponse, KeyResponse, KeyStatus, KeyUsageResponse, KeysResponse,
    PAGE_MAX, RevokeToken, RevokedByTokenResponse, Workspace, WorkspaceFoundResponse,
    WorkspaceResponse, WorkspaceUsageResponse, WorkspacesResponse,
};
use crate::error::CliError;
use crate::output;
use crate::period::Period;
use crate::secrets::{self, CredentialStore};
use crate::token::PlainToken;

/// The server the CLI manages when nothing says otherwise: the local `serve`'s default.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8787";

/// How long an export or import may take as a whole.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// Which page of a list: at most `limit` rows (the server's default when absent), after
/// `cursor`, the previous page's `next_cursor`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Which workspaces `GET /workspaces` lists.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkspacesQuery {
    /// Only slugs that start with this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Which keys `GET …/mcp-keys` lists.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KeysQuery {
    pub status: Option<KeyStatus>,
    /// The keys whose id, name or displayed prefix this is (every match, in one page).
    #[serde(rename = "match")]
    pub reference: Option<String>,
    /// Only keys flagged `shared`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// Only active keys unused for this long (never-used ones created that long ago).
    pub unused_for: Option<Period>,
    /// Only keys never used.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub never_used: bool,
    /// Only keys the caller created.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mine: bool,
    /// Only active keys that expire within 7 days.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expiring: bool,
}

/// Which events `GET …/audit` lists.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditQuery {
    /// Only this key's events (its id).
    pub key: Option<String>,
    /// The calls keys made merged in, reads included.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub calls: bool,
    /// Only what this actor did: a member's name, or `administrator`, `key`…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The period of `GET …/usage` and `GET …/mcp-keys/{id}/usage`: back from now (the server's
/// default, 30 days, when absent).
#[derive(Debug, Clone, Default, Serialize)]
pub struct UsageQuery {
    pub since: Option<Period>,
}

/// Where `POST /imports` writes: a new workspace (`new`, `slug`) or an existing one
/// (`workspace`); for a CSV, the journey its rows become.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportQuery {
    pub workspace: Option<String>,
    pub new: Option<String>,
    pub slug: Option<String>,
    pub journey: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// How much of a list to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// The first `n` rows (and the cursor, if there are more).
    First(u32),
    /// Every row, however many pages that takes.
    All,
}

/// A list answer, read a page at a time.
pub trait Paged {
    /// The rows read so far.
    fn rows(&self) -> usize;
    /// Where the next page starts, taken (absent on the last page).
    fn take_cursor(&mut self) -> Option<String>;
    /// The rows of the page after this one, and its cursor.
    fn append(&mut self, next: Self);
}

/// Reads `rows` of a list: the first page, then the next ones as each `next_cursor` leads, until
/// there are enough rows or none are left. `fetch` reads one page; `progress` hears how many
/// rows were read before each page after the first. What else the first page says (a period,
/// totals) stays; its `next_cursor` ends as the last page's, so it tells whether rows were left.
pub fn pages<P: Paged>(
    rows: Rows,
    mut fetch: impl FnMut(&PageQuery) -> anyhow::Result<P>,
    mut progress: impl FnMut(usize),
) -> anyhow::Result<P> {
    let page = |read: usize, cursor: Option<String>| {
        let wanted = match rows {
            Rows::First(n) => u32::try_from(read).map_or(0, |read| n.saturating_sub(read)),
            Rows::All => PAGE_MAX,
        };
        PageQuery { limit: Some(wanted.min(PAGE_MAX)), cursor }
    };
    let mut answer = fetch(&page(0, None))?;
    loop {
        let read = answer.rows();
        if matches!(rows, Rows::First(n) if read >= n as usize) {
            return Ok(answer);
        }
        let Some(cursor) = answer.take_cursor() else { return Ok(answer) };
        progress(read);
        let next = fetch(&page(read, Some(cursor)))?;
        answer.append(next);
    }
}

impl Paged for KeysResponse {
    fn rows(&self) -> usize {
        self.keys.len()
    }

    fn take_cursor(&mut self) -> Option<String> {
        self.next_cursor.take()
    }

    fn append(&mut self, next: Self) {
        self.keys.extend(next.keys);
        self.next_cursor = next.next_cursor;
    }
}

impl Paged for WorkspacesResponse {
    fn rows(&self) -> usize {
        self.workspaces.len()
    }

    fn take_cursor(&mut self) -> Option<String> {
        self.next_cursor.take()
    }

    fn append(&mut self, next: Self) {
        self.workspaces.extend(next.workspaces);
        self.next_cursor = next.next_cursor;
    }
}

impl Paged for EventsResponse {
    fn rows(&self) -> usize {
        self.events.len()
    }

    fn take_cursor(&mut self) -> Option<String> {
        self.next_cursor.take()
    }

    fn append(&mut self, next: Self) {
        self.events.extend(next.events);
        self.next_cursor = next.next_cursor;
    }
}

impl Paged for WorkspaceUsageResponse {
    fn rows(&self) -> usize {
        self.keys.len()
    }

    fn take_cursor(&mut self) -> Option<String> {
        self.next_cursor.take()
    }

    fn append(&mut self, next: Self) {
        self.keys.extend(next.keys);
        self.next_cursor = next.next_cursor;
    }
}

/// Pages of hours; the totals and origins are the first page's (they cover the whole period).
impl Paged for KeyUsageResponse {
    fn rows(&self) -> usize {
        self.hours.len()
    }

    fn take_cursor(&mut self) -> Option<String> {
        self.next_cursor.take()
    }

    fn append(&mut self, next: Self) {
        self.hours.extend(next.hours);
        self.next_cursor = next.next_cursor;
    }
}

/// The owner credential: `CUSTORY_OWNER_TOKEN`, else the one saved for `server`.
pub fn owner_credential(server: &str) -> anyhow::Result<PlainToken> {
    output::trace(|| format!("server: {server}"));
    if let Ok(raw) = std::env::var("CUSTORY_OWNER_TOKEN") {
        output::trace(|| "owner credential: CUSTORY_OWNER_TOKEN".to_owned());
        return PlainToken::parse(&raw).map_err(|error| {
            CliError::failure(format!(
                "CUSTORY_OWNER_TOKEN is not a valid owner credential: {error}"
            ))
            .hint("copy the csa_… credential again, or unset CUSTORY_OWNER_TOKEN")
            .into()
        });
    }
    let store = CredentialStore::open()?;
    output::trace(|| format!("owner credential: the one saved for {server}"));
    let saved = store.get(&secrets::owner_account(server))?;
    if saved.is_none() {
        // "Log in" is no advice when nothing answers there: say that instead.
        probe(server)?;
    }
    saved.ok_or_else(|| {
        CliError::failure(format!("no owner credential is saved for {server}"))
            .hint(format!(
                "run `custory-mcp login --server {server}`, or start a local server with \
                 `custory-mcp serve` (it saves one on first start)"
            ))
            .into()
    })
}

/// `--server` checked before anything is asked of it or of the user: an `http://` or `https://`
/// base URL (no path, query, fragment or user name). Returns it as `scheme://host[:port]`.
/// `127.0.0.1:8787` (no scheme) gets a "did you mean", `…/api/mcp` the base URL to use.
pub fn server_url(raw: &str) -> Result<String, String> {
    let given = raw.trim();
    if !given.contains("://") {
        let guess = given.trim_end_matches('/');
        let host = guess.split(['/', ':']).next().unwrap_or_default();
        let scheme = if is_loopback_host(host) { "http" } else { "https" };
        return Err(format!("no scheme; did you mean {scheme}://{guess}?"));
    }
    let url = reqwest::Url::parse(given).map_err(|error| format!("not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "not an http:// or https:// URL (e.g. {DEFAULT})",
            DEFAULT = DEFAULT_SERVER
        ));
    }
    let base = url.origin().ascii_serialization();
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "a URL with a user name; pass --server {base}, and the owner credential to \
             `custory-mcp login`"
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "a path on a server; --server takes the server's base URL: --server {base}"
        ));
    }
    Ok(base)
}

/// Whether `host` (as written in a URL) names this machine.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The command that starts a local server answering at `server`, when `server` is a loopback
/// URL: `custory-mcp serve` for the default one, with `--listen` for another port.
fn serve_command(server: &str) -> Option<String> {
    let url = reqwest::Url::parse(server).ok()?;
    if url.scheme() != "http" || !is_loopback_host(url.host_str()?) {
        return None;
    }
    if server == DEFAULT_SERVER {
        return Some("custory-mcp serve".to_owned());
    }
    let host = match url.host()? {
        url::Host::Domain(_) => "127.0.0.1".to_owned(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => format!("[{ip}]"),
    };
    Some(format!("custory-mcp serve --listen {host}:{}", url.port_or_known_default()?))
}

/// What `GET /healthz` says: a custory-mcp server is there, and its version.
#[derive(Debug, Clone, serde::Deserialize, Serialize)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// Asks `server` (checked by [`server_url`]) whether a custory-mcp server answers there, with
/// no credential: the `nothing answers at …` error names the command that starts one.
pub fn probe(server: &str) -> anyhow::Result<Health> {
    let http = with_extra_roots(reqwest::Client::builder())
        .user_agent(concat!("custory-mcp/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let url = format!("{server}/healthz");
    let not_custory = || {
        CliError::failure(format!("{server} answers, but it is not a custory-mcp server"))
            .hint("check --server: it is the URL `custory-mcp serve` printed when it started")
    };
    runtime.block_on(async {
        let response = http.get(&url).send().await.map_err(|error| unreachable(server, &error))?;
        if !response.status().is_success() {
            return Err(not_custory().into());
        }
        let bytes = read_capped(response, PROBE_BODY_MAX).await.map_err(|_| not_custory())?;
        serde_json::from_slice::<Health>(&bytes).map_err(|_| not_custory().into())
    })
}

/// Why `server` did not answer, as a sentence with what to run next.
fn unreachable(server: &str, error: &reqwest::Error) -> anyhow::Error {
    let mut chain = String::new();
    let mut root = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        root = cause.to_string();
        source = cause.source();
    }
    if chain.contains("certificate") || chain.contains("UnknownIssuer") {
        return CliError::failure(format!(
            "could not reach the Custory server at {server}: its TLS certificate is not trusted \
             ({root})"
        ))
        .hint("pass --ca-cert FILE with the CA that signed it (or set CUSTORY_CA_CERT)")
        .into();
    }
    let start = serve_command(server).map_or_else(
        || "start it, or pass the right --server URL (or set CUSTORY_SERVER)".to_owned(),
        |serve| format!("start it with `{serve}`, or pass the right --server URL"),
    );
    if error.is_connect() && !error.is_timeout() {
        return CliError::failure(format!("nothing answers at {server}")).hint(start).into();
    }
    let cause = if error.is_timeout() {
        "it did not answer in time".to_owned()
    } else {
        std::error::Error::source(error).map_or_else(|| error.to_string(), ToString::to_string)
    };
    CliError::failure(format!("could not reach the Custory server at {server}: {cause}"))
        .hint(start)
        .into()
}

/// Why an answer's body could not be read whole.
enum ReadError {
    /// It held more than the cap.
    TooLarge,
    Failed(reqwest::Error),
}

/// The body of `response`, read as it streams, refused past `max` bytes: a hostile or broken
/// server cannot make the CLI hold more.
async fn read_capped(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|length| length > max as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Failed)? {
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The most an admin API answer may hold: a full page of keys or events is well under 2 MB.
pub const ANSWER_MAX: usize = 16 * 1024 * 1024;

/// The most `/healthz` may send.
const PROBE_BODY_MAX: usize = 64 * 1024;

pub struct AdminClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    server: String,
    token: PlainToken,
}

/// CA certificates to trust beyond the system's (`--ca-cert`), for every HTTP client the CLI
/// makes.
static EXTRA_ROOTS: std::sync::OnceLock<Vec<reqwest::Certificate>> = std::sync::OnceLock::new();

/// Reads `--ca-cert`: the CA certificates of a private server.
pub fn trust_ca_file(path: &std::path::Path) -> anyhow::Result<()> {
    let pem = std::fs::read(path).map_err(|error| {
        CliError::failure(format!("could not read --ca-cert {}: {error}", path.display()))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|certs| !certs.is_empty())
        .ok_or_else(|| {
            CliError::failure(format!("--ca-cert {} holds no PEM certificate", path.display()))
                .hint("pass the CA's certificate, the file that begins -----BEGIN CERTIFICATE-----")
        })?;
    let _ = EXTRA_ROOTS.set(certs);
    Ok(())
}

/// `builder` trusting `--ca-cert` too.
pub fn with_extra_roots(mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    for cert in EXTRA_ROOTS.get().into_iter().flatten() {
        builder = builder.add_root_certificate(cert.clone());
    }
    builder
}

impl AdminClient {
    /// A client for `server` with the owner credential found for it.
    pub fn connect(server: &str) -> anyhow::Result<Self> {
        let token = owner_credential(server)?;
        Self::with_token(server, token)
    }

    pub fn with_token(server: &str, token: PlainToken) -> anyhow::Result<Self> {
        let http = with_extra_roots(reqwest::Client::builder())
            .user_agent(concat!("custory-mcp/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the owner credential to whoever it names: none is followed.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            // A connection left idle while a person answers a prompt is closed by the server
            // (`serve --header-timeout`, 10 s by default); reused, the next request would fail
            // as if the server were down. One idle for a second is not reused.
            .pool_idle_timeout(Duration::from_secs(1))
            .build()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Self { http, runtime, server: server.trim_end_matches('/').to_owned(), token })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    // One method per route of the admin API (`server/mod.rs`), in its order. Only these build
    // its paths: each segment is percent-encoded, each query serialized from its type.

    /// `GET /workspaces`: a page of the workspaces the credential may see, by slug.
    pub fn workspaces(
        &self,
        filter: &WorkspacesQuery,
        page: &PageQuery,
    ) -> anyhow::Result<WorkspacesResponse> {
        self.send(self.get(&["workspaces"])?.query(filter).query(page))
    }

    /// `GET /workspaces/{ws}`: the workspace `slug`, or `None` when the server has none by
    /// that slug that this credential may see.
    pub fn workspace(&self, slug: &str) -> anyhow::Result<Option<Workspace>> {
        let found: Option<WorkspaceFoundResponse> =
            self.send_unless_missing(self.get(&["workspaces", slug])?, "workspace_not_found")?;
        Ok(found.map(|found| found.workspace))
    }

    /// `POST /workspaces`.
    pub fn create_workspace(&self, body: &CreateWorkspace) -> anyhow::Result<WorkspaceResponse> {
        self.send(self.post(&["workspaces"])?.json(body))
    }

    /// `GET /workspaces/{ws}/mcp-keys`: a page of the keys `filter` selects.
    pub fn keys(
        &self,
        workspace: &str,
        filter: &KeysQuery,
        page: &PageQuery,
    ) -> anyhow::Result<KeysResponse> {
        self.send(self.get(&["workspaces", workspace, "mcp-keys"])?.query(filter).query(page))
    }

    /// `GET /mcp-keys?match=`: where the key an id or displayed prefix names is, on the whole
    /// server (in the workspaces this credential may see).
    pub fn find_keys(&self, reference: &str) -> anyhow::Result<FoundKeysResponse> {
        self.send(self.get(&["mcp-keys"])?.query(&[("match", reference)]))
    }

    /// `POST /workspaces/{ws}/mcp-keys`.
    pub fn create_key(
        &self,
        workspace: &str,
        body: &CreateKey,
    ) -> anyhow::Result<CreatedKeyResponse> {
        self.send(self.post(&["workspaces", workspace, "mcp-keys"])?.json(body))
    }

    /// `GET /workspaces/{ws}/mcp-keys/{id}`.
    #[expect(dead_code, reason = "commands find a key by what it is called: `keys` with `match`")]
    pub fn key(&self, workspace: &str, id: &str) -> anyhow::Result<KeyResponse> {
        self.send(self.get(&["workspaces", workspace, "mcp-keys", id])?)
    }

    /// `POST /workspaces/{ws}/mcp-keys/{id}/revoke`.
    pub fn revoke_key(&self, workspace: &str, id: &str) -> anyhow::Result<KeyResponse> {
        self.send(self.post(&["workspaces", workspace, "mcp-keys", id, "revoke"])?)
    }

    /// `POST /workspaces/{ws}/mcp-keys/{id}/narrow`.
    pub fn narrow_key(
        &self,
        workspace: &str,
        id: &str,
        body: &crate::api::NarrowKey,
    ) -> anyhow::Result<KeyResponse> {
        self.send(self.post(&["workspaces", workspace, "mcp-keys", id, "narrow"])?.json(body))
    }

    /// `POST /workspaces/{ws}/mcp-keys/{id}/rotate`.
    pub fn rotate_key(&self, workspace: &str, id: &str) -> anyhow::Result<CreatedKeyResponse> {
        self.send(self.post(&["workspaces", workspace, "mcp-keys", id, "rotate"])?)
    }

    /// `GET /workspaces/{ws}/mcp-keys/{id}/usage`: a page of the key's hours.
    pub fn key_usage(
        &self,
        workspace: &str,
        id: &str,
        period: &UsageQuery,
        page: &PageQuery,
    ) -> anyhow::Result<KeyUsageResponse> {
        let request = self.get(&["workspaces", workspace, "mcp-keys", id, "usage"])?;
        self.send(request.query(period).query(page))
    }

    /// `GET /workspaces/{ws}/audit`: a page of the audit trail, newest first.
    pub fn audit(
        &self,
        workspace: &str,
        filter: &AuditQuery,
        page: &PageQuery,
    ) -> anyhow::Result<EventsResponse> {
        self.send(self.get(&["workspaces", workspace, "audit"])?.query(filter).query(page))
    }

    /// `GET /workspaces/{ws}/usage`: a page of the keys used in the period, busiest first.
    pub fn usage(
        &self,
        workspace: &str,
        period: &UsageQuery,
        page: &PageQuery,
    ) -> anyhow::Result<WorkspaceUsageResponse> {
        self.send(self.get(&["workspaces", workspace, "usage"])?.query(period).query(page))
    }

    /// `POST /mcp-keys/revoke-token`: revokes the key `token` belongs to, wherever it is.
    pub fn revoke_token(&self, token: &PlainToken) -> anyhow::Result<RevokedByTokenResponse> {
        let body = RevokeToken { token: token.expose().to_owned() };
        self.send(self.post(&["mcp-keys", "revoke-token"])?.json(&body))
    }

    /// `GET /whoami`: who this credential is, and their roles.
    pub fn whoami(&self) -> anyhow::Result<crate::api::WhoAmIResponse> {
        self.send(self.get(&["whoami"])?)
    }

    /// `GET /workspaces/{ws}/members`.
    /// `GET /workspaces/{ws}/journeys`: a page of journeys (id, slug, name).
    pub fn journeys(
        &self,
        workspace: &str,
        cursor: Option<&str>,
    ) -> anyhow::Result<crate::api::JourneysResponse> {
        let mut request = self.get(&["workspaces", workspace, "journeys"])?;
        if let Some(cursor) = cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        self.send(request)
    }

    pub fn members(&self, workspace: &str) -> anyhow::Result<crate::api::MembersResponse> {
        self.send(self.get(&["workspaces", workspace, "members"])?)
    }

    /// `POST /workspaces/{ws}/invitations`: the invitation and its one-time code.
    pub fn invite(
        &self,
        workspace: &str,
        body: &crate::api::CreateInvitation,
    ) -> anyhow::Result<crate::api::CreatedInvitationResponse> {
        self.send(self.post(&["workspaces", workspace, "invitations"])?.json(body))
    }

    /// `GET /workspaces/{ws}/invitations`: the ones waiting to be redeemed.
    pub fn invitations(&self, workspace: &str) -> anyhow::Result<crate::api::InvitationsResponse> {
        self.send(self.get(&["workspaces", workspace, "invitations"])?)
    }

    /// `POST /workspaces/{ws}/invitations/{prefix}/withdraw`.
    pub fn withdraw_invitation(
        &self,
        workspace: &str,
        prefix: &str,
    ) -> anyhow::Result<crate::api::WithdrawnInvitationResponse> {
        self.send(self.post(&["workspaces", workspace, "invitations", prefix, "withdraw"])?)
    }

    /// `POST /workspaces/{ws}/members/{name}/role`.
    pub fn change_role(
        &self,
        workspace: &str,
        name: &str,
        role: crate::api::Role,
    ) -> anyhow::Result<crate::api::MemberResponse> {
        let body = crate::api::ChangeRole { role };
        self.send(self.post(&["workspaces", workspace, "members", name, "role"])?.json(&body))
    }

    /// `POST /workspaces/{ws}/members/{name}/remove`.
    pub fn remove_member(
        &self,
        workspace: &str,
        name: &str,
        revoke_keys: bool,
    ) -> anyhow::Result<crate::api::RemovedMemberResponse> {
        let body = crate::api::RemoveMember { revoke_keys };
        self.send(self.post(&["workspaces", workspace, "members", name, "remove"])?.json(&body))
    }

    /// `POST /workspaces/{ws}/webhooks`: the endpoint and its signing secret (shown once).
    pub fn add_webhook(
        &self,
        workspace: &str,
        url: &str,
        events: &[crate::api::WebhookEvent],
        format: crate::api::WebhookFormat,
    ) -> anyhow::Result<crate::api::CreatedWebhookResponse> {
        let body = serde_json::json!({"url": url, "events": events, "format": format});
        self.send(self.post(&["workspaces", workspace, "webhooks"])?.json(&body))
    }

    /// `GET /workspaces/{ws}/webhooks`.
    pub fn webhooks(&self, workspace: &str) -> anyhow::Result<crate::api::WebhooksResponse> {
        self.send(self.get(&["workspaces", workspace, "webhooks"])?)
    }

    /// `POST /workspaces/{ws}/webhooks/{id}/remove`.
    pub fn remove_webhook(&self, workspace: &str, id: &str) -> anyhow::Result<serde_json::Value> {
        self.send(self.post(&["workspaces", workspace, "webhooks", id, "remove"])?)
    }

    /// `POST /workspaces/{ws}/webhooks/{id}/test`: the test delivery, as the receiver took it.
    pub fn test_webhook(
        &self,
        workspace: &str,
        id: &str,
    ) -> anyhow::Result<crate::api::WebhookDelivery> {
        self.send(self.post(&["workspaces", workspace, "webhooks", id, "test"])?)
    }

    /// `GET /workspaces/{ws}/webhook-deliveries`: the most recent first.
    pub fn webhook_deliveries(
        &self,
        workspace: &str,
        webhook: Option<&str>,
        limit: u32,
        cursor: Option<&str>,
    ) -> anyhow::Result<crate::api::WebhookDeliveriesResponse> {
        #[derive(Serialize)]
        struct Query<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            webhook: Option<&'a str>,
            limit: u32,
            #[serde(skip_serializing_if = "Option::is_none")]
            cursor: Option<&'a str>,
        }
        let query = Query { webhook, limit, cursor };
        self.send(self.get(&["workspaces", workspace, "webhook-deliveries"])?.query(&query))
    }

    /// `GET /workspaces/{ws}/policy`: the workspace's key policy.
    pub fn policy(&self, workspace: &str) -> anyhow::Result<crate::api::PolicyResponse> {
        self.send(self.get(&["workspaces", workspace, "policy"])?)
    }

    /// `POST /workspaces/{ws}/policy`: sets and clears rules; what changed, and the keys the
    /// policy now blocks.
    pub fn set_policy(
        &self,
        workspace: &str,
        change: &crate::api::SetPolicy,
    ) -> anyhow::Result<crate::api::SetPolicyResponse> {
        self.send(self.post(&["workspaces", workspace, "policy"])?.json(change))
    }

    /// `POST /invitations/redeem` (no credential: the code is sent in the body only).
    pub fn redeem_invitation(
        server: &str,
        code: &PlainToken,
    ) -> anyhow::Result<crate::api::RedeemedInvitationResponse> {
        // A client whose bearer is never sent: `redeem` posts without `Authorization`.
        let client = Self::with_token(server, code.clone())?;
        let body = crate::api::RedeemInvitation { code: code.expose().to_owned() };
        let request = client.http.post(client.url(&["invitations", "redeem"])?).json(&body);
        client.send(request)
    }

    /// `GET /workspaces/{ws}/export` into `file` (0600, written beside it and renamed into
    /// place, so a failed download leaves no half file). Returns the bytes written.
    pub fn export(&self, workspace: &str, file: &std::path::Path) -> anyhow::Result<u64> {
        crate::fsutil::replace_private(file, |out| self.export_to(workspace, out)).map_err(
            |error| match error.downcast::<std::io::Error>() {
                Ok(io) => {
                    CliError::failure(format!("could not write {}: {io}", file.display())).into()
                }
                Err(other) => other,
            },
        )
    }

    /// `GET /workspaces/{ws}/export`, streamed into `out`. Returns the bytes written.
    pub fn export_to(&self, workspace: &str, out: &mut impl std::io::Write) -> anyhow::Result<u64> {
        let request = self.get(&["workspaces", workspace, "export"])?.timeout(TRANSFER_TIMEOUT);
        self.runtime.block_on(async {
            let mut response = self.execute(request).await?;
            let status = response.status();
            if !status.is_success() {
                let bytes = self.read(response).await?;
                return Err(self.api_error(status, &bytes).into());
            }
            let mut written = 0;
            while let Some(chunk) =
                response.chunk().await.map_err(|error| self.unreachable(&error))?
            {
                match out.write_all(&chunk) {
                    Ok(()) => written += chunk.len() as u64,
                    // The reader went away (`export | head`): stop quietly, as `cat` does.
                    Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                        return Ok(written);
                    }
                    Err(error) => {
                        return Err(CliError::failure(format!("could not write: {error}")).into());
                    }
                }
            }
            match out.flush() {
                Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(CliError::failure(format!("could not write: {error}")).into())
                }
                _ => Ok(written),
            }
        })
    }

    /// `POST /imports`: the file at `file` (`-`: stdin), streamed, as `content_type`.
    pub fn import(
        &self,
        target: &ImportQuery,
        file: &std::path::Path,
        content_type: &str,
    ) -> anyhow::Result<ImportResponse> {
        let request = self
            .post(&["imports"])?
            .query(target)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .timeout(TRANSFER_TIMEOUT);
        let cannot = |error: std::io::Error| {
            CliError::failure(format!("could not read {}: {error}", file.display()))
        };
        self.runtime.block_on(async {
            let body = if file.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
                    .map_err(cannot)?;
                reqwest::Body::from(bytes)
            } else {
                reqwest::Body::from(tokio::fs::File::open(file).await.map_err(cannot)?)
            };
            let response = self.execute(request.body(body)).await?;
            self.answer(response).await
        })
    }

    /// The admin API's URL of `segments`, each percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> anyhow::Result<reqwest::Url> {
        let invalid = |why: String| CliError::usage(format!("invalid --server URL: {why}"));
        let mut url = reqwest::Url::parse(&self.server).map_err(|e| invalid(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| invalid(format!("{} cannot be a base", self.server)))?
            .pop_if_empty()
            .extend(["api", "admin"])
            .extend(segments);
        Ok(url)
    }

    fn get(&self, segments: &[&str]) -> anyhow::Result<reqwest::RequestBuilder> {
        Ok(self.http.get(self.url(segments)?).bearer_auth(self.token.expose()))
    }

    fn post(&self, segments: &[&str]) -> anyhow::Result<reqwest::RequestBuilder> {
        Ok(self.http.post(self.url(segments)?).bearer_auth(self.token.expose()))
    }

    fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> anyhow::Result<T> {
        self.runtime.block_on(async {
            let response = self.execute(request).await?;
            self.answer(response).await
        })
    }

    /// [`Self::send`], with an API error of `code` on a 404 answered as `None`.
    fn send_unless_missing<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        code: &str,
    ) -> anyhow::Result<Option<T>> {
        self.runtime.block_on(async {
            let response = self.execute(request).await?;
            if response.status() != StatusCode::NOT_FOUND {
                return self.answer(response).await.map(Some);
            }
            let bytes = self.read(response).await?;
            match serde_json::from_slice::<ErrorResponse>(&bytes) {
                Ok(ErrorResponse { error }) if error.code == code => Ok(None),
                _ => Err(self.api_error(StatusCode::NOT_FOUND, &bytes).into()),
            }
        })
    }

    /// Sends `request`. With `-v`, says on stderr what was asked and what came back (the method,
    /// URL, status and time; never a header, since one carries the credential).
    async fn execute(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let (http, request) = request.build_split();
        let request = request.map_err(|error| self.unreachable(&error))?;
        let asked = format!("{} {}", request.method(), request.url());
        output::trace(|| format!("→ {asked}"));
        let started = std::time::Instant::now();
        let response = http.execute(request).await;
        let took = started.elapsed().as_millis();
        match &response {
            Ok(response) => output::trace(|| format!("← {} in {took} ms", response.status())),
            Err(error) => output::trace(|| format!("← no answer after {took} ms: {error}")),
        }
        let response = response.map_err(|error| self.unreachable(&error))?;
        if response.status().is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|l| crate::api::displayable(&String::from_utf8_lossy(l.as_bytes())))
                .unwrap_or_default();
            return Err(CliError::failure(format!(
                "the server at {} answered {} with a redirect to {location:?}, which is not \
                 followed: it could carry the owner credential elsewhere",
                self.server,
                response.status()
            ))
            .hint("pass the URL the server is really at as --server (or set CUSTORY_SERVER)")
            .into());
        }
        Ok(response)
    }

    /// The body of `response`, at most [`ANSWER_MAX`] bytes.
    async fn read(&self, response: reqwest::Response) -> anyhow::Result<Vec<u8>> {
        read_capped(response, ANSWER_MAX).await.map_err(|error| match error {
            ReadError::Failed(error) => self.unreachable(&error),
            ReadError::TooLarge => CliError::failure(format!(
                "the server at {} sent an answer larger than {} MiB; it was not read",
                self.server,
                ANSWER_MAX >> 20
            ))
            .hint("check that --server points at a custory-mcp server")
            .into(),
        })
    }

    /// The JSON answer of `response`, or the API error it carries.
    async fn answer<T: DeserializeOwned>(&self, response: reqwest::Response) -> anyhow::Result<T> {
        let status = response.status();
        let bytes = self.read(response).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|error| {
                CliError::failure(format!(
                    "the server at {} sent an answer this version of custory-mcp does not \
                     understand ({error})",
                    self.server
                ))
                .hint("check that --server points at a custory-mcp server of the same version")
                .into()
            });
        }
        Err(self.api_error(status, &bytes).into())
    }

    fn unreachable(&self, error: &reqwest::Error) -> anyhow::Error {
        unreachable(&self.server, error)
    }

    fn api_error(&self, status: StatusCode, body: &[u8]) -> CliError {
        let Ok(ErrorResponse { error }) = serde_json::from_slice::<ErrorResponse>(body) else {
            return CliError::failure(format!(
                "the server at {} answered {status}, which is not a Custory admin API answer",
                self.server
            ))
            .hint("check that --server points at a custory-mcp server");
        };
        let mut message = error.message;
        // Each problem on a line of its own (an import's validation errors).
        if error.details.len() > 1 {
            for detail in &error.details {
                message.push_str(&format!("\n  {}: {}", detail.path, detail.message));
            }
        }
        let failure = CliError::failure(message);
        match (status, error.code.as_str()) {
            (_, "invalid_document") => failure.hint(
                "fix the document (`custory-mcp import --help` describes it), then import it \
                 again; `--dry-run` checks it without writing",
            ),
            (_, "invalid_csv") => failure.hint(
                "fix the file (`custory-mcp import --help` lists the columns and their values), \
                 then import it again; `--dry-run` checks it without writing",
            ),
            (_, "invitation_not_found" | "invitation_used" | "invitation_expired") => failure.hint(
                "ask whoever invited you for a new invitation (`custory-mcp members invite \
                     NAME --role ROLE`), then run `custory-mcp login --invite` again",
            ),
            (_, "role_required" | "not_your_key" | "administrator_only") => {
                failure.hint("`custory-mcp whoami` shows your roles and what each may do")
            }
            (StatusCode::UNAUTHORIZED, _) => failure.hint(format!(
                "run `custory-mcp login --server {}` with this server's owner credential, or \
                 `custory-mcp login --server {} --invite` with an invitation",
                self.server, self.server
            )),
            (_, "mcp_key_not_allowed") => failure.hint(
                "MCP keys only work for MCP clients; log in with the owner credential (csa_…)",
            ),
            (_, "workspace_not_found") => {
                failure.hint("pass --workspace SLUG; `custory-mcp workspaces list` shows them")
            }
            (_, code) if code.starts_with("policy_") => {
                failure.hint("`custory-mcp policy show` lists the workspace's key policy")
            }
            (_, "key_not_found") => {
                failure.hint("`custory-mcp keys list` shows the workspace's keys")
            }
            _ => failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PageQuery, Rows, pages};
    use crate::api::EventsResponse;

    /// A list of `total` events served `limit` at a time; the cursor is the next row's index.
    fn serve(total: usize, asked: &mut Vec<PageQuery>, page: &PageQuery) -> EventsResponse {
        asked.push(page.clone());
        let start = page.cursor.as_deref().map_or(0, |c| c.parse().expect("a cursor"));
        let end = (start + page.limit.expect("a limit") as usize).min(total);
        let event = |id| {
            serde_json::from_value(serde_json::json!({
                "id": id, "at": "2026-01-01T00:00:00Z", "kind": "key.created",
                "key_id": null, "key_prefix": null, "detail": ""
            }))
            .expect("an event")
        };
        EventsResponse {
            events: (start..end).map(event).collect(),
            next_cursor: (end < total).then(|| end.to_string()),
        }
    }

    #[test]
    fn pages_follow_cursors_up_to_the_rows_asked_for() {
        let (mut asked, mut heard) = (Vec::new(), Vec::new());
        let all =
            pages(Rows::All, |p| Ok(serve(2500, &mut asked, p)), |n| heard.push(n)).expect("all");
        assert_eq!(all.events.len(), 2500);
        assert_eq!(all.next_cursor, None);
        assert_eq!(asked.iter().map(|p| p.limit).collect::<Vec<_>>(), [Some(1000); 3]);
        assert_eq!(heard, [1000, 2000]);

        // One page when it holds them all; the cursor says that more are left.
        let mut asked = Vec::new();
        let first =
            pages(Rows::First(10), |p| Ok(serve(2500, &mut asked, p)), |_| {}).expect("first");
        assert_eq!((first.events.len(), first.next_cursor.as_deref()), (10, Some("10")));
        assert_eq!(asked.len(), 1);

        // More than a page holds: the rest is asked for, and no more.
        let mut asked = Vec::new();
        let many =
            pages(Rows::First(1500), |p| Ok(serve(2500, &mut asked, p)), |_| {}).expect("many");
        assert_eq!((many.events.len(), many.next_cursor.as_deref()), (1500, Some("1500")));
        assert_eq!(asked.iter().map(|p| p.limit).collect::<Vec<_>>(), [Some(1000), Some(500)]);

        let mut asked = Vec::new();
        let few = pages(Rows::First(100), |p| Ok(serve(7, &mut asked, p)), |_| {}).expect("few");
        assert_eq!((few.events.len(), few.next_cursor), (7, None));
    }
}
