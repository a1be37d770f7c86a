//! Who a request is from: the TCP peer, or, when that peer is a proxy named by
//! `--trusted-proxy`, the client the proxy says it forwards (`X-Forwarded-For`, or
//! `Forwarded` with `--forwarded-header forwarded`). Anyone else's forwarding headers are ignored: they are the client's own
//! words. The address is worked out once per request (`listen.rs`) and used for the last-used
//! address, the failed-authentication limit and the log.

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

/// Which header the trusted proxies set. Only that one is read: a proxy that appends to
/// `X-Forwarded-For` passes a client's own `Forwarded` through untouched, and the other way
/// round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1` (nginx, HAProxy, most load balancers)
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client` (RFC 7239)
    Forwarded,
}

/// The client's address, as this server trusts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // `listen.rs` sets it on every request; a request from elsewhere (a router test)
        // counts as loopback.
        Ok(parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .unwrap_or(ClientAddr(IpAddr::from([127, 0, 0, 1]))))
    }
}

/// The client behind `peer`: walking the forwarded chain from the nearest hop, each address a
/// trusted proxy vouches for is taken, until one that is not a trusted proxy.
pub fn resolve(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: ForwardedHeader,
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let chain = match header {
        ForwardedHeader::Forwarded => forwarded_for(headers).unwrap_or_default(),
        ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
    };
    let mut client = peer;
    for hop in chain.into_iter().rev() {
        match hop {
            Some(ip) if is_trusted(&client) => client = ip,
            _ => break,
        }
    }
    client
}

/// The `for=` addresses of `Forwarded` (RFC 7239), nearest last; `None` for a hop that hides
/// or garbles its address. `None` when the header is absent.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut values = headers.get_all("forwarded").iter().peekable();
    values.peek()?;
    let mut chain = Vec::new();
    for value in values {
        let Ok(value) = value.to_str() else { return Some(vec![None]) };
        for element in value.split(',') {
            let address = element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for").then_some(value)
            });
            chain.push(address.and_then(node_ip));
        }
    }
    Some(chain)
}

/// A `Forwarded` node: `192.0.2.1`, `"192.0.2.1:80"`, `"[2001:db8::1]:4711"`.
fn node_ip(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    node.parse().ok().or_else(|| node.rsplit_once(':')?.0.parse().ok())
}

/// The addresses of `X-Forwarded-For`, nearest last.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| {
            let parts: Vec<Option<IpAddr>> = match value.to_str() {
                Ok(text) => text.split(',').map(node_ip).collect(),
                Err(_) => vec![None],
            };
            parts
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("header"));
        }
        map
    }

    #[test]
    fn only_trusted_proxies_are_believed_and_only_as_far_as_the_chain_is_trusted() {
        const X: ForwardedHeader = ForwardedHeader::XForwardedFor;
        const F: ForwardedHeader = ForwardedHeader::Forwarded;
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let proxy: IpAddr = "10.1.1.1".parse().expect("ip");
        let stranger: IpAddr = "198.51.100.9".parse().expect("ip");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let xff = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(resolve(proxy, &xff, &trusted, X), ip("203.0.113.7"));
        assert_eq!(
            resolve(stranger, &xff, &trusted, X),
            stranger,
            "a stranger's header is ignored"
        );
        // A client that forges the start of the chain gets only as far as the first
        // untrusted hop: itself.
        let forged = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.2.2.2")]);
        assert_eq!(resolve(proxy, &forged, &trusted, X), ip("203.0.113.7"));
        let forwarded =
            headers(&[("forwarded", "for=192.0.2.60;proto=https, for=\"[2001:db8::17]:4711\"")]);
        assert_eq!(resolve(proxy, &forwarded, &trusted, F), ip("2001:db8::17"));
        let hidden = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(resolve(proxy, &hidden, &trusted, F), proxy);
        assert_eq!(resolve(proxy, &HeaderMap::new(), &trusted, X), proxy);
        let both = headers(&[("forwarded", "for=192.0.2.1"), ("x-forwarded-for", "192.0.2.2")]);
        assert_eq!(resolve(proxy, &both, &trusted, F), ip("192.0.2.1"));
        assert_eq!(resolve(proxy, &both, &trusted, X), ip("192.0.2.2"), "only the one header");
    }
}
