//! The admin API client (reqwest): the CLI's only way to reach a server's data. Turns every
//! failure into a sentence with a hint naming what to run next.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{ErrorResponse, Workspace, WorkspacesResponse};

/// How long an export or import may take as a whole.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);
use crate::error::CliError;
use crate::secrets::{self, CredentialStore};
use crate::token::PlainToken;

/// The owner credential: `CUSTORY_OWNER_TOKEN`, else the one saved for `server`.
pub fn owner_credential(server: &str) -> anyhow::Result<PlainToken> {
    if let Ok(raw) = std::env::var("CUSTORY_OWNER_TOKEN") {
        return PlainToken::parse(&raw).map_err(|error| {
            CliError::failure(format!(
                "CUSTORY_OWNER_TOKEN is not a valid owner credential: {error}"
            ))
            .hint("copy the csa_… credential again, or unset CUSTORY_OWNER_TOKEN")
            .into()
        });
    }
    CredentialStore::open()?.get(&secrets::owner_account(server))?.ok_or_else(|| {
        CliError::failure(format!("no owner credential is saved for {server}"))
            .hint(format!(
                "run `custory-mcp login --server {server}`, or start a local server with \
                 `custory-mcp serve` (it saves one on first start)"
            ))
            .into()
    })
}

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
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Self { http, runtime, server: server.trim_end_matches('/').to_owned(), token })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(Method::GET, path, None::<&()>)
    }

    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        self.send(Method::POST, path, body)
    }

    fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let url = format!("{}/api/admin{path}", self.server);
        let mut request = self.http.request(method, &url).bearer_auth(self.token.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        self.runtime.block_on(async {
            let response = request.send().await.map_err(|error| self.unreachable(&error))?;
            self.answer(response).await
        })
    }

    /// The JSON answer of `response`, or the API error it carries.
    async fn answer<T: DeserializeOwned>(&self, response: reqwest::Response) -> anyhow::Result<T> {
        let status = response.status();
        let bytes = response.bytes().await.map_err(|error| self.unreachable(&error))?;
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

    /// Streams the answer to GET `path` into `file` (0600, written beside it and renamed into
    /// place, so a failed download leaves no half file). Returns the bytes written.
    pub fn download(&self, path: &str, file: &std::path::Path) -> anyhow::Result<u64> {
        crate::fsutil::replace_private(file, |out| self.download_to(path, out)).map_err(|error| {
            match error.downcast::<std::io::Error>() {
                Ok(io) => {
                    CliError::failure(format!("could not write {}: {io}", file.display())).into()
                }
                Err(other) => other,
            }
        })
    }

    /// Streams the answer to GET `path` into `out`. Returns the bytes written.
    pub fn download_to(&self, path: &str, out: &mut impl std::io::Write) -> anyhow::Result<u64> {
        let url = format!("{}/api/admin{path}", self.server);
        let request =
            self.http.get(&url).bearer_auth(self.token.expose()).timeout(TRANSFER_TIMEOUT);
        self.runtime.block_on(async {
            let mut response = request.send().await.map_err(|error| self.unreachable(&error))?;
            let status = response.status();
            if !status.is_success() {
                let bytes = response.bytes().await.map_err(|error| self.unreachable(&error))?;
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

    /// POSTs the file at `file` (`-`: stdin) to `path` with `query`, streamed, as
    /// `content_type`.
    pub fn upload<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        file: &std::path::Path,
        content_type: &str,
    ) -> anyhow::Result<T> {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/api/admin{path}", self.server), query)
                .map_err(|error| CliError::usage(format!("invalid --server URL: {error}")))?;
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
            let response = self
                .http
                .post(url)
                .bearer_auth(self.token.expose())
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .timeout(TRANSFER_TIMEOUT)
                .body(body)
                .send()
                .await
                .map_err(|error| self.unreachable(&error))?;
            self.answer(response).await
        })
    }

    fn unreachable(&self, error: &reqwest::Error) -> anyhow::Error {
        let mut chain = String::new();
        let mut root = String::new();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            chain.push_str(&format!(": {cause}"));
            root = cause.to_string();
            source = cause.source();
        }
        let cause = if error.is_timeout() {
            "it did not answer in time".to_owned()
        } else if chain.contains("certificate") || chain.contains("UnknownIssuer") {
            return CliError::failure(format!(
                "could not reach the Custory server at {}: its TLS certificate is not trusted \
                 ({root})",
                self.server
            ))
            .hint("pass --ca-cert FILE with the CA that signed it (or set CUSTORY_CA_CERT)")
            .into();
        } else if error.is_connect() {
            "could not connect".to_owned()
        } else {
            std::error::Error::source(error).map_or_else(|| error.to_string(), ToString::to_string)
        };
        CliError::failure(format!("could not reach the Custory server at {}: {cause}", self.server))
            .hint(
                "start one with `custory-mcp serve`, or pass --server URL (or set CUSTORY_SERVER)",
            )
            .into()
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
                "fix the document (`docs/WORKSPACE_FORMAT.md` describes it), then import it \
                 again; `--dry-run` checks it without writing",
            ),
            (_, "invalid_csv") => failure.hint(
                "fix the file (`docs/WORKSPACE_FORMAT.md` lists the columns and their values), \
                 then import it again; `--dry-run` checks it without writing",
            ),
            (StatusCode::UNAUTHORIZED, _) => failure.hint(format!(
                "run `custory-mcp login --server {}` with this server's owner credential",
                self.server
            )),
            (_, "mcp_key_not_allowed") => failure.hint(
                "MCP keys only work for MCP clients; log in with the owner credential (csa_…)",
            ),
            (_, "workspace_not_found") => {
                failure.hint("pass --workspace SLUG; `custory-mcp workspaces list` shows them")
            }
            (_, "key_not_found") => {
                failure.hint("`custory-mcp keys list` shows the workspace's keys")
            }
            _ => failure,
        }
    }

    /// The workspace to act on: `--workspace`, else the server's only workspace.
    pub fn workspace(&self, requested: Option<&str>) -> anyhow::Result<Workspace> {
        let WorkspacesResponse { workspaces } = self.get("/workspaces")?;
        if let Some(slug) = requested {
            let known: Vec<String> = workspaces.iter().map(|w| w.slug.clone()).collect();
            return workspaces.into_iter().find(|w| w.slug == slug).ok_or_else(|| {
                CliError::failure(format!(
                    "no workspace {slug:?} on {}; its workspaces are: {}",
                    self.server,
                    known.join(", ")
                ))
                .hint("pass one of them with --workspace (or set CUSTORY_WORKSPACE)")
                .into()
            });
        }
        match <[Workspace; 1]>::try_from(workspaces) {
            Ok([only]) => Ok(only),
            Err(workspaces) if workspaces.is_empty() => {
                Err(CliError::failure(format!("the server at {} has no workspaces", self.server))
                    .hint("create one with `custory-mcp workspaces create NAME`")
                    .into())
            }
            Err(workspaces) => {
                let slugs: Vec<&str> = workspaces.iter().map(|w| w.slug.as_str()).collect();
                Err(CliError::usage(format!(
                    "the server has several workspaces ({}); say which one",
                    slugs.join(", ")
                ))
                .hint(format!("pass --workspace {} (or set CUSTORY_WORKSPACE)", slugs[0]))
                .into())
            }
        }
    }
}
