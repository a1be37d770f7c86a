//! OAuth's records: registered clients, the owner's browser sessions, and authorization codes.
//! A code holds what the owner approved; redeeming it (once, with the PKCE verifier) mints an
//! ordinary MCP key. Secrets (session ids, codes) are stored as SHA-256 hashes only.

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest as _, Sha256};

use super::AccessStore;
use super::keys::{audit_key, insert_key};
use crate::api::{Access, EventKind, ExpiryPolicy, Key};
use crate::store::db::{OptionalExtension as _, params};
use crate::store::{StoreError, StoreResult, from_secs, new_id};
use crate::token::PlainToken;

/// How long a code may wait for its redemption.
pub const CODE_LIFETIME: Duration = Duration::minutes(2);
/// How long an owner's browser session lasts.
pub const SESSION_LIFETIME: Duration = Duration::hours(8);
/// A client that never led to a key is forgotten after this long.
const UNUSED_CLIENT_LIFETIME: Duration = Duration::hours(24);
/// Clients registered within [`UNUSED_CLIENT_LIFETIME`] that never led to a key, at most:
/// registration needs no credential, so a stranger could otherwise fill the database.
pub const UNUSED_CLIENTS_MAX: i64 = 1_000;
/// Of those, at most this many from one source (the network the server counts an address
/// under): past it, the source's own oldest registration makes room.
pub const UNUSED_CLIENTS_PER_SOURCE: i64 = 50;
/// Redirect URIs one client may register.
pub const REDIRECT_URIS_MAX: usize = 10;

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// What the owner approved on the consent page, waiting for the client to redeem it.
#[derive(Debug, Clone)]
pub struct Grant {
    pub client_id: String,
    pub redirect_uri: String,
    /// The PKCE S256 challenge (base64url of the verifier's SHA-256).
    pub code_challenge: String,
    /// The resource (RFC 8707) the key is for: the MCP endpoint's URL.
    pub resource: String,
    pub workspace_id: i64,
    pub key_name: String,
    pub expires: ExpiryPolicy,
    pub access: Access,
    /// The member who consented (`None`: the administrator).
    pub member: Option<Signer>,
}

/// Who is signed in at the consent page: the administrator (owner credential) or a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    Administrator,
    Member { id: String, name: String },
}

/// What a token request presents with its code.
#[derive(Debug)]
pub struct Redemption<'a> {
    pub code: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: &'a str,
    pub resource: Option<&'a str>,
}

/// Why a code was not redeemed; each is an RFC 6749 error of the token endpoint.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    /// `invalid_grant`: unknown, used, expired, or issued to another client or redirect.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// `invalid_target`: the code was issued for another resource.
    #[error("the resource is not the one the code was issued for")]
    InvalidTarget,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::store::db::DbError> for RedeemError {
    fn from(error: crate::store::db::DbError) -> Self {
        Self::Store(error.into())
    }
}

/// A new random secret (256 bits, base64url) and its hash.
fn secret() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    crate::token::fill_random(&mut bytes);
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_of(&text);
    (text, hash)
}

fn hash_of(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Compares two strings in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn client_row(row: &crate::store::db::Row) -> crate::store::db::DbResult<OAuthClient> {
    let uris: String = row.get("redirect_uris")?;
    Ok(OAuthClient {
        id: row.get("id")?,
        name: row.get("name")?,
        // Written by `register_client` from a Vec<String>: it parses back.
        redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
        created_at: from_secs(row.get("created_at")?),
    })
}

/// Registers a client (RFC 7591) from `source` (the network the caller counts the address
/// under). Registration needs no credential, so the clients that never led to a key are
/// bounded: [`UNUSED_CLIENTS_PER_SOURCE`] from one source, [`UNUSED_CLIENTS_MAX`] in all, each
/// forgotten after a day. Past a bound nobody is refused: the oldest waiting registration of
/// this source, or else of the source holding the most, is forgotten to make room. A source
/// can push out only its own registrations or those of a source holding more, so one source
/// (or forty) cannot close registration for a new one. Clients with a code outstanding are
/// never forgotten (the owner has approved them).
pub(super) fn register_client(
    s: &AccessStore<'_>,
    name: &str,
    redirect_uris: &[String],
    source: &str,
) -> StoreResult<OAuthClient> {
    let now = s.now();
    let conn = s.writer();
    let tx = conn.transaction()?;
    let cutoff = (now - UNUSED_CLIENT_LIFETIME).timestamp();
    tx.execute(
        "DELETE FROM oauth_codes WHERE expires_at < ?1 AND used_at IS NULL",
        [now.timestamp()],
    )?;
    tx.execute(
        "DELETE FROM oauth_clients WHERE used_at IS NULL AND created_at < ?1
               AND id NOT IN (SELECT client_id FROM oauth_codes)",
        [cutoff],
    )?;
    let waiting: i64 =
        tx.query_row("SELECT count(*) AS n FROM oauth_clients WHERE used_at IS NULL", [], |row| {
            row.get("n")
        })?;
    let from_here: i64 = tx.query_row(
        "SELECT count(*) AS n FROM oauth_clients WHERE used_at IS NULL AND created_ip = ?1",
        [source],
        |row| row.get("n"),
    )?;
    let crowded = if from_here >= UNUSED_CLIENTS_PER_SOURCE {
        Some(source.to_owned())
    } else if waiting >= UNUSED_CLIENTS_MAX {
        tx.query_row(
            "SELECT created_ip AS source FROM oauth_clients
              WHERE used_at IS NULL AND created_ip IS NOT NULL
                AND id NOT IN (SELECT client_id FROM oauth_codes)
              GROUP BY created_ip
              ORDER BY count(*) DESC, min(created_at), created_ip
              LIMIT 1",
            [],
            |row| row.get::<String>("source"),
        )
        .optional()?
    } else {
        None
    };
    if let Some(crowded) = crowded {
        let forgotten = tx.execute(
            "DELETE FROM oauth_clients WHERE id = (
                 SELECT id FROM oauth_clients
                  WHERE used_at IS NULL AND created_ip = ?1
                    AND id NOT IN (SELECT client_id FROM oauth_codes)
                  ORDER BY created_at, id
                  LIMIT 1)",
            [&crowded],
        )?;
        if forgotten == 0 {
            return Err(StoreError::Quota(format!(
                "{waiting} OAuth clients registered in the last day are waiting for the owner's \
                 approval; registration reopens as they are approved or expire"
            )));
        }
        tracing::debug!(source = %crowded, "forgot the oldest waiting OAuth client to make room");
    }
    let client = OAuthClient {
        id: new_id("ocl"),
        name: name.to_owned(),
        redirect_uris: redirect_uris.to_vec(),
        created_at: now,
    };
    let uris = serde_json::to_string(&client.redirect_uris)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    tx.execute(
        "INSERT INTO oauth_clients (id, name, redirect_uris, created_at, created_ip)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        params![client.id, client.name, uris, now.timestamp(), source],
    )?;
    tx.commit()?;
    Ok(client)
}

/// Keeps a client known by its metadata document (its id is the document's URL) once the
/// owner approved it, so that its codes and keys can name it.
pub(super) fn save_document_client(s: &AccessStore<'_>, client: &OAuthClient) -> StoreResult<()> {
    let uris = serde_json::to_string(&client.redirect_uris)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    s.writer().execute(
        "INSERT INTO oauth_clients (id, name, redirect_uris, created_at, used_at)
             VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                                            redirect_uris = excluded.redirect_uris",
        params![client.id, client.name, uris, s.now().timestamp()],
    )?;
    Ok(())
}

/// The client registered as `id`.
pub(super) fn oauth_client(s: &AccessStore<'_>, id: &str) -> StoreResult<Option<OAuthClient>> {
    let conn = s.reader()?;
    Ok(conn
        .query_row(
            "SELECT id, name, redirect_uris, created_at FROM oauth_clients WHERE id = ?1",
            [id],
            client_row,
        )
        .optional()?)
}

/// Starts an owner's browser session; returns its secret (the cookie's value).
pub(super) fn create_owner_session(
    s: &AccessStore<'_>,
    member_id: Option<&str>,
) -> StoreResult<String> {
    let now = s.now();
    let (secret, hash) = secret();
    let conn = s.writer();
    conn.execute("DELETE FROM oauth_sessions WHERE expires_at < ?1", [now.timestamp()])?;
    conn.execute(
        "INSERT INTO oauth_sessions (token_hash, created_at, expires_at, member_id)
         VALUES (?1, ?2, ?3, ?4)",
        params![&hash[..], now.timestamp(), (now + SESSION_LIFETIME).timestamp(), member_id],
    )?;
    Ok(secret)
}

/// Who a live session belongs to: the administrator, or a member who is still one (a
/// removed member's session ends with them).
pub(super) fn session_signer(s: &AccessStore<'_>, secret: &str) -> StoreResult<Option<Signer>> {
    let conn = s.reader()?;
    let found = conn
        .query_row(
            "SELECT s.expires_at, s.member_id, m.name, m.removed_at FROM oauth_sessions s
             LEFT JOIN members m ON m.id = s.member_id WHERE s.token_hash = ?1",
            params![&hash_of(secret)[..]],
            |row| {
                Ok((
                    row.get::<i64>("expires_at")?,
                    row.get::<Option<String>>("member_id")?,
                    row.get::<Option<String>>("name")?,
                    row.get::<Option<i64>>("removed_at")?,
                ))
            },
        )
        .optional()?;
    Ok(match found {
        Some((expires_at, _, _, _)) if expires_at <= s.now().timestamp() => None,
        Some((_, None, _, _)) => Some(Signer::Administrator),
        Some((_, Some(id), Some(name), None)) => Some(Signer::Member { id, name }),
        _ => None,
    })
}

/// Whether `secret` is a live session.
pub(super) fn owner_session_valid(s: &AccessStore<'_>, secret: &str) -> StoreResult<bool> {
    Ok(session_signer(s, secret)?.is_some())
}

/// Ends an owner's browser session.
pub(super) fn end_owner_session(s: &AccessStore<'_>, secret: &str) -> StoreResult<()> {
    s.writer().execute(
        "DELETE FROM oauth_sessions WHERE token_hash = ?1",
        params![&hash_of(secret)[..]],
    )?;
    Ok(())
}

/// Records an approved grant; returns the code that redeems it.
pub(super) fn issue_code(s: &AccessStore<'_>, grant: &Grant) -> StoreResult<String> {
    let now = s.now();
    let (member_id, member_name) = match &grant.member {
        Some(Signer::Member { id, name }) => (Some(id.as_str()), Some(name.as_str())),
        _ => (None, None),
    };
    let (code, hash) = secret();
    let conn = s.writer();
    // Spent codes are kept a day, to recognise a replay; then they go.
    conn.execute(
        "DELETE FROM oauth_codes WHERE expires_at < ?1",
        [(now - chrono::Duration::days(1)).timestamp()],
    )?;
    conn.execute(
        "INSERT INTO oauth_codes (code_hash, client_id, redirect_uri, code_challenge,
                                      resource, workspace_id, key_name, access, expires,
                                      created_at, expires_at, member_id, member_name)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            &hash[..],
            grant.client_id,
            grant.redirect_uri,
            grant.code_challenge,
            grant.resource,
            grant.workspace_id,
            grant.key_name,
            grant.access.as_str(),
            grant.expires.as_str(),
            now.timestamp(),
            (now + CODE_LIFETIME).timestamp(),
            member_id,
            member_name,
        ],
    )?;
    Ok(code)
}

/// What the token endpoint says of a code that is not one this server issued.
pub const UNKNOWN_CODE: &str = "the code is not one this server issued";
const EXPIRED_CODE: &str = "the code has expired; sign in again";

/// Whether `code` has the shape of the codes [`issue_code`] makes (43 base64url characters):
/// anything else is refused before the database is asked.
pub fn plausible_code(code: &str) -> bool {
    code.len() == 43 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Redeems a code for a new MCP key, once. Any attempt burns a code that could still be
/// spent; presenting a code that was already redeemed revokes the key it minted (RFC 6749
/// §4.1.2: it may have been stolen).
/// Whether `code` may still be spent (or was spent: a replay is the writer's to answer),
/// looked up on a reader: a code this server never issued, or one that expired unspent, is
/// refused without the writer, so a stranger's guesses neither wait behind a write (an
/// import) nor hold one up.
pub(super) fn check_code(s: &AccessStore<'_>, code: &str) -> Result<(), RedeemError> {
    let seen = s
        .reader()?
        .query_row(
            "SELECT expires_at, used_at FROM oauth_codes WHERE code_hash = ?1",
            params![&hash_of(code)[..]],
            |row| Ok((row.get::<i64>("expires_at")?, row.get::<Option<i64>>("used_at")?)),
        )
        .optional()?;
    match seen {
        None => Err(RedeemError::InvalidGrant(UNKNOWN_CODE)),
        Some((expires_at, None)) if expires_at <= s.now().timestamp() => {
            Err(RedeemError::InvalidGrant(EXPIRED_CODE))
        }
        Some(_) => Ok(()),
    }
}

pub(super) fn redeem_code(
    s: &AccessStore<'_>,
    asked: &Redemption<'_>,
) -> Result<(Key, PlainToken), RedeemError> {
    let now = s.now();
    let hash = hash_of(asked.code);
    check_code(s, asked.code)?;
    let conn = s.writer();
    let tx = conn.transaction()?;
    let row = tx
        .query_row(
            "SELECT client_id, redirect_uri, code_challenge, resource, workspace_id, key_name,
                        access, expires, expires_at, used_at, key_id
                 FROM oauth_codes WHERE code_hash = ?1",
            params![&hash[..]],
            |row| {
                Ok((
                    row.get::<String>("client_id")?,
                    row.get::<String>("redirect_uri")?,
                    row.get::<String>("code_challenge")?,
                    row.get::<String>("resource")?,
                    row.get::<i64>("workspace_id")?,
                    row.get::<String>("key_name")?,
                    row.get::<String>("access")?,
                    row.get::<String>("expires")?,
                    row.get::<i64>("expires_at")?,
                    row.get::<Option<i64>>("used_at")?,
                    row.get::<Option<String>>("key_id")?,
                ))
            },
        )
        .optional()?;
    let Some((
        client_id,
        redirect_uri,
        challenge,
        resource,
        workspace_id,
        key_name,
        access,
        expires,
        expires_at,
        used_at,
        key_id,
    )) = row
    else {
        return Err(RedeemError::InvalidGrant(UNKNOWN_CODE));
    };
    if used_at.is_some() {
        drop(tx);
        drop(conn);
        if let Some(key_id) = key_id {
            match super::keys::revoke_key_because(
                s,
                workspace_id,
                &key_id,
                None,
                &crate::api::Author::of(crate::api::AuthorKind::Server),
            ) {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        return Err(RedeemError::InvalidGrant(
            "the code was already used; a code is good for one token (the key it gave was \
                 revoked in case it was stolen)",
        ));
    }
    tx.execute(
        "UPDATE oauth_codes SET used_at = ?1 WHERE code_hash = ?2",
        params![now.timestamp(), &hash[..]],
    )?;
    let refused = if expires_at <= now.timestamp() {
        Some(RedeemError::InvalidGrant(EXPIRED_CODE))
    } else if !same_secret(&client_id, asked.client_id) {
        Some(RedeemError::InvalidGrant("the code was issued to another client"))
    } else if redirect_uri != asked.redirect_uri {
        Some(RedeemError::InvalidGrant("the redirect_uri is not the one the code was sent to"))
    } else if !same_secret(&s256(asked.code_verifier), &challenge) {
        Some(RedeemError::InvalidGrant("the code_verifier does not match the code_challenge"))
    } else if asked.resource.is_some_and(|r| r.trim_end_matches('/') != resource) {
        Some(RedeemError::InvalidTarget)
    } else {
        None
    };
    if let Some(refused) = refused {
        tx.commit()?;
        return Err(refused);
    }
    let client_name: String =
        tx.query_row("SELECT name FROM oauth_clients WHERE id = ?1", [&client_id], |row| {
            row.get("name")
        })?;
    // Parsed from the CHECK-constrained columns.
    let access = Access::parse(&access).unwrap_or(Access::ReadOnly);
    let expires = ExpiryPolicy::parse(&expires).unwrap_or(ExpiryPolicy::Days30);
    // Consent is given in the browser: the key is the consent's, and the member's who signed
    // in to give it (none: the administrator's owner credential).
    let signer = tx.query_row(
        "SELECT member_id, member_name FROM oauth_codes WHERE code_hash = ?1",
        params![&hash[..]],
        |row| {
            Ok((row.get::<Option<String>>("member_id")?, row.get::<Option<String>>("member_name")?))
        },
    )?;
    let by = match signer {
        (Some(id), Some(name)) => {
            crate::api::Author::member(crate::api::AuthorKind::Consent, &id, &name)
        }
        _ => crate::api::Author::of(crate::api::AuthorKind::Consent),
    };
    // The workspace's key policy, as it is now: the key gets its limits (a consent gives no
    // scopes), and no more expiry or access than it allows.
    let policy = super::policy::policy(s, workspace_id)?;
    let (_, _, scopes) = policy.policy.fill(Some(expires), Some(access), Default::default());
    let (expires, access, scopes) = policy
        .policy
        .conform(expires, access, &scopes)
        .map_err(|breach| StoreError::Invalid(breach.message))?;
    // The owner saw the name free; another key may have taken it since.
    let (key, token) = (1..=20)
        .find_map(|n| {
            let name = if n == 1 { key_name.clone() } else { format!("{key_name} ({n})") };
            match insert_key(&tx, workspace_id, &name, (expires, access, &scopes), &by, now) {
                Err(StoreError::Conflict(_)) => None,
                other => Some(other),
            }
        })
        .unwrap_or_else(|| {
            Err(StoreError::Conflict(format!("active keys named {key_name:?} exist")))
        })?;
    tx.execute(
        "UPDATE mcp_keys SET oauth_client_id = ?1, oauth_client_name = ?2 WHERE id = ?3",
        params![client_id, client_name, key.id],
    )?;
    tx.execute(
        "UPDATE oauth_codes SET key_id = ?1 WHERE code_hash = ?2",
        params![key.id, &hash[..]],
    )?;
    tx.execute(
        "UPDATE oauth_clients SET used_at = ?1 WHERE id = ?2",
        params![now.timestamp(), client_id],
    )?;
    let detail = format!(
        "created {:?} ({}, expires {}) via OAuth for {client_name:?} ({client_id})",
        key.name,
        access.as_str(),
        expires.as_str()
    );
    audit_key(&tx, workspace_id, now, EventKind::KeyCreated, &key, &detail, &by)?;
    let key = super::keys::key_on(&tx, workspace_id, &key.id, now)?;
    tx.commit()?;
    super::keys::reindex_key(s, &conn, &key.id)?;
    Ok((key, token))
}

/// Single-label schemes of clients that use one for their OAuth redirect, allowed by name
/// (docs/OAUTH.md says why): Cursor registers `cursor://anysphere.cursor-mcp/oauth/callback`;
/// VS Code's own URL handler is `vscode://` (`vscode-insiders://` for Insiders).
const KNOWN_APP_SCHEMES: [&str; 3] = ["cursor", "vscode", "vscode-insiders"];

/// Whether `uri` may be registered, decided by its scheme, never by a list of bad ones: https
/// anywhere, http on loopback only (RFC 8252 §7.3), an app's reverse-DNS private-use scheme
/// (`com.example.app:/callback`, RFC 8252 §7.1), or one of [`KNOWN_APP_SCHEMES`]. Everything
/// else (`javascript:`, `data:`, and every operating-system handler: `ms-msdt:`,
/// `search-ms:`, `view-source:`…) is refused. Never a fragment. The error is the
/// `error_description` of an `invalid_redirect_uri`.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > 2000 {
        return Err("a redirect URI is at most 2000 characters".into());
    }
    let parsed = url::Url::parse(uri).map_err(|e| format!("{uri:?} is not a URI: {e}"))?;
    if parsed.fragment().is_some() {
        return Err(format!("{uri:?} has a fragment; redirect URIs may not (RFC 6749 §3.1.2)"));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(format!(
            "{uri:?} is plain http to another machine; use https, or a loopback address \
             (http://127.0.0.1:PORT/…)"
        )),
        scheme if KNOWN_APP_SCHEMES.contains(&scheme) || is_reverse_dns(scheme) => Ok(()),
        scheme => Err(format!(
            "{uri:?} uses the scheme {scheme}:, which this server does not send codes to; use \
             https, http on a loopback address, or the app's own reverse-DNS scheme such as \
             com.example.app:/callback (RFC 8252 §7.1)"
        )),
    }
}

/// Whether `scheme` is a domain name in reverse order (RFC 8252 §7.1): at least two labels of
/// letters, digits and inner hyphens, the first (the top-level domain) letters only. So
/// `com.example.app` is one, and `x-apple.systempreferences` (an operating system's) is not.
fn is_reverse_dns(scheme: &str) -> bool {
    let labels: Vec<&str> = scheme.split('.').collect();
    let label_ok = |label: &&str| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    labels.len() >= 2
        && labels.iter().all(label_ok)
        && labels[0].len() >= 2
        && labels[0].bytes().all(|b| b.is_ascii_alphabetic())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether `asked` is one of `registered`, exactly; for http on loopback the port may differ
/// (RFC 8252 §7.3: the client picks a free port at each start).
pub fn redirect_registered(registered: &[String], asked: &str) -> bool {
    let Ok(asked_url) = url::Url::parse(asked) else { return false };
    registered.iter().any(|uri| {
        if uri == asked {
            return true;
        }
        let Ok(mut known) = url::Url::parse(uri) else { return false };
        if known.scheme() != "http" || !is_loopback(&known) || !is_loopback(&asked_url) {
            return false;
        }
        known.set_port(asked_url.port()).is_ok() && known == asked_url
    })
}
