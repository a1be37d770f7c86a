//! Client ID Metadata Documents (MCP authorization, 2025-11-25): a client whose `client_id` is
//! an https URL is described by the JSON document at that URL, so it needs no registration.
//! Fetching a URL a stranger names is a server-side request: only https, only public
//! addresses (checked after DNS, so a name cannot point inside), no redirects, a short
//! timeout and a small body. Documents are cached for a few minutes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::store::access::oauth::{OAuthClient, REDIRECT_URIS_MAX};

/// How long a fetched document is trusted before it is fetched again.
const CACHE_FOR: Duration = Duration::from_secs(300);
/// Documents kept at most; the cache starts over when full.
const CACHE_MAX: usize = 1_000;
/// Documents fetched at the same time, at most: each holds a connection to a stranger's host.
const FETCHES_AT_ONCE: usize = 4;
/// The largest document read.
const DOCUMENT_MAX_BYTES: usize = 16 * 1024;

/// Who may be fetched, and what to trust: production fetches public https only; tests serve
/// documents on loopback with their own certificate.
#[derive(Debug, Clone, Default)]
pub struct FetchPolicy {
    pub allow_private_addresses: bool,
    /// Extra root certificates (DER) beyond the system's.
    pub extra_roots: Vec<Vec<u8>>,
}

/// How a failure to reach a client's metadata document begins (the consent page adds what the
/// server's operator can do about it).
pub const FETCH_FAILED: &str = "the client's metadata document could not be fetched";

pub struct MetadataFetcher {
    /// Built at the first fetch (a client loads the system's roots: no server that never
    /// sees a metadata document pays for it); `None` when no safe client could be built, and
    /// nothing is fetched then.
    client: std::sync::OnceLock<Option<reqwest::Client>>,
    policy: FetchPolicy,
    /// Fetches running at once, at most [`FETCHES_AT_ONCE`].
    running: tokio::sync::Semaphore,
    allow_private: bool,
    cache: Mutex<HashMap<String, (Instant, OAuthClient)>>,
}

impl std::fmt::Debug for MetadataFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataFetcher").finish_non_exhaustive()
    }
}

/// Whether `url` is a client ID Metadata Document URL rather than a registered client id.
pub fn is_document_url(client_id: &str) -> bool {
    client_id.starts_with("https://")
}

impl MetadataFetcher {
    pub fn new(policy: &FetchPolicy) -> Self {
        Self {
            client: std::sync::OnceLock::new(),
            policy: policy.clone(),
            running: tokio::sync::Semaphore::new(FETCHES_AT_ONCE),
            allow_private: policy.allow_private_addresses,
            cache: Mutex::default(),
        }
    }

    fn http(&self) -> Option<&reqwest::Client> {
        self.client
            .get_or_init(|| {
                let policy = &self.policy;
                let mut builder = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .connect_timeout(Duration::from_secs(3))
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .user_agent(concat!("custory-mcp/", env!("CARGO_PKG_VERSION")));
                if !policy.allow_private_addresses {
                    builder = builder.dns_resolver(Arc::new(PublicOnly));
                }
                for der in &policy.extra_roots {
                    if let Ok(cert) = reqwest::Certificate::from_der(der) {
                        builder = builder.add_root_certificate(cert);
                    }
                }
                // Building fails only when the TLS backend cannot start; then nothing is
                // fetched (never with a client that lacks these limits).
                builder.build().ok()
            })
            .as_ref()
    }

    /// The client the document at `url` describes, or why it cannot be used (a sentence for
    /// the consent page).
    pub async fn client(&self, url: &str) -> Result<OAuthClient, String> {
        let cached = self.lock().get(url).filter(|(at, _)| at.elapsed() < CACHE_FOR).cloned();
        if let Some((_, client)) = cached {
            return Ok(client);
        }
        let client = self.fetch(url).await?;
        let mut cache = self.lock();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(url.to_owned(), (Instant::now(), client.clone()));
        Ok(client)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, OAuthClient)>> {
        // A poisoned cache only means a panic elsewhere; its entries are whole.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn fetch(&self, url: &str) -> Result<OAuthClient, String> {
        let parsed =
            url::Url::parse(url).map_err(|e| format!("the client_id is not a URL: {e}"))?;
        // Written as the parser writes it back: no dot segments, escapes or case tricks.
        if parsed.scheme() != "https"
            || parsed.as_str() != url
            || parsed.path() == "/"
            || parsed.query().is_some()
            || parsed.fragment().is_some()
            || !parsed.username().is_empty()
            || parsed.password().is_some()
        {
            return Err("a client_id URL must be a plain https URL with a path, and no query, \
                        fragment, credentials or dot segments"
                .into());
        }
        let Some(client) = self.http() else {
            return Err("this server cannot fetch client metadata documents".into());
        };
        let Ok(_running) = self.running.try_acquire() else {
            return Err("too many client documents are being fetched right now; retry".into());
        };
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if !self.allow_private && literal.is_some_and(|ip| !is_public(ip)) {
            return Err("the client_id URL points at a private address".into());
        }
        let response = client
            .get(parsed)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{FETCH_FAILED}: {e}"))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!(
                "the client's metadata document answered {} instead of 200",
                response.status()
            ));
        }
        if response.content_length().is_some_and(|n| n > DOCUMENT_MAX_BYTES as u64) {
            return Err("the client's metadata document is too large".into());
        }
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            body.extend_from_slice(&chunk);
            if body.len() > DOCUMENT_MAX_BYTES {
                return Err("the client's metadata document is too large".into());
            }
        }
        let document: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("the client's metadata document is not JSON: {e}"))?;
        document_client(url, &document)
    }
}

/// The client a document describes: it must name itself (`client_id` is its own URL), list
/// its redirect URIs, and be a public client.
fn document_client(url: &str, document: &Value) -> Result<OAuthClient, String> {
    if document["client_id"].as_str() != Some(url) {
        return Err("the client's metadata document names another client_id".into());
    }
    let uris: Vec<String> = document["redirect_uris"]
        .as_array()
        .filter(|uris| !uris.is_empty() && uris.len() <= REDIRECT_URIS_MAX)
        .and_then(|uris| uris.iter().map(|u| u.as_str().map(str::to_owned)).collect())
        .ok_or("the client's metadata document lists no redirect_uris")?;
    for uri in &uris {
        crate::store::access::oauth::check_redirect_uri(uri).map_err(|why| {
            format!(
                "its metadata document lists a redirect URI this server refuses \
                 (invalid_redirect_uri): {why}"
            )
        })?;
    }
    match document["token_endpoint_auth_method"].as_str() {
        None | Some("none") => {}
        Some(other) => {
            return Err(format!(
                "the client authenticates with {other}; this server takes public clients only"
            ));
        }
    }
    let name = document["client_name"]
        .as_str()
        .and_then(|n| crate::api::validate_name(n).ok())
        .map_or_else(
            || {
                url::Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default()
            },
            str::to_owned,
        );
    Ok(OAuthClient {
        id: url.to_owned(),
        name,
        redirect_uris: uris,
        created_at: chrono::Utc::now(),
    })
}

/// Resolves names to public addresses only.
pub(super) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 443))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `ip` is on the public internet (not loopback, private, link-local, shared,
/// documentation, benchmarking, multicast or unspecified), IPv4 inside IPv6 included.
pub(super) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, c, _] = ip.octets();
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_broadcast()
                || ip.is_documentation()
                || ip.is_unspecified()
                || ip.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(ip) => {
            let s = ip.segments();
            let v4 = |hi: u16, lo: u16| {
                IpAddr::V4(std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)))
            };
            // IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach an
            // IPv4 address: that one decides.
            if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) && !(s[6] == 0 && s[7] <= 1) {
                return is_public(v4(s[6], s[7]));
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public(v4(s[6], s[7]));
            }
            if s[0] == 0x2002 {
                return is_public(v4(s[1], s[2]));
            }
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (s[0] == 0x64 && s[1] == 0xff9b)
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_fetched() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(!is_public(private.parse().expect("ip")), "{private}");
        }
        for public in ["1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn a_document_must_name_itself() {
        let url = "https://app.example/oauth/client.json";
        let good = serde_json::json!({"client_id": url, "client_name": "App",
                                      "redirect_uris": ["http://127.0.0.1:3000/cb"]});
        assert_eq!(document_client(url, &good).expect("good").name, "App");
        let mut other = good.clone();
        other["client_id"] = "https://evil.example/c.json".into();
        assert!(document_client(url, &other).is_err());
        let mut secret = good.clone();
        secret["token_endpoint_auth_method"] = "private_key_jwt".into();
        assert!(document_client(url, &secret).is_err());
        let mut bad_redirect = good;
        bad_redirect["redirect_uris"] = serde_json::json!(["http://evil.example/cb"]);
        assert!(document_client(url, &bad_redirect).is_err());
    }
}
