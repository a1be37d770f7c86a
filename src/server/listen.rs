//! Accepting connections, bounded: how many are open at once (in all, and from one address),
//! how long a client may take to send a request head (which also closes idle keep-alive
//! connections), and how long shutdown waits for the requests in flight. Each connection is
//! served by hyper's own HTTP/1 server, with its own timer.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use super::limiter::address_group;

/// The bounds on connections; `serve` flags set them.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Connections open at once from one address (IPv6: one /64).
    pub max_per_address: usize,
    /// Time a client has to send a whole request head, on a new connection or between
    /// requests on a kept-alive one: past it the connection is closed.
    pub header_timeout: Duration,
    /// How long shutdown waits for requests in flight before closing their connections.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_per_address: 256,
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(8),
        }
    }
}

/// Counts the open connections of each address group.
#[derive(Debug, Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of an address group; closing it gives the place back.
struct Place {
    table: Arc<PerAddress>,
    group: IpAddr,
}

impl PerAddress {
    fn enter(table: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Place> {
        let group = address_group(ip);
        // A poisoned lock only means a panic elsewhere; the counts are still usable.
        let mut open = table.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(group).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Place { table: Arc::clone(table), group })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.group) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.group);
            }
        }
    }
}

/// What stands in front of the router: the proxies trusted to name clients, and TLS.
pub struct Front {
    pub trusted: Arc<[ipnet::IpNet]>,
    pub forwarded: super::client_addr::ForwardedHeader,
    pub tls: Option<Arc<super::tls::Certificates>>,
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, lets requests
/// in flight finish for at most `limits.shutdown_grace`, and closes what is left.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    front: Front,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = Arc::new(PerAddress::default());
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot: OwnedSemaphorePermit = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // the semaphore is never closed
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, or a connection reset before it was accepted: wait a
                    // moment rather than spin, then go on.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A trusted proxy carries many clients: its connections are not capped per address.
        let proxy = front.trusted.iter().any(|net| net.contains(&peer.ip()));
        let cap = if proxy { usize::MAX } else { limits.max_per_address };
        let Some(place) = PerAddress::enter(&per_address, peer.ip(), cap) else {
            tracing::debug!(peer = %peer.ip(), "refused a connection: too many from this address");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (trusted, forwarded) = (Arc::clone(&front.trusted), front.forwarded);
        let service = app.clone().map_request(move |mut request: axum::extract::Request| {
            let client =
                super::client_addr::resolve(peer.ip(), request.headers(), &trusted, forwarded);
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            request.extensions_mut().insert(super::client_addr::ClientAddr(client));
            request
        });
        let service = TowerToHyperService::new(service.map_request(
            |request: hyper::Request<hyper::body::Incoming>| request.map(axum::body::Body::new),
        ));
        match &front.tls {
            None => {
                let connection =
                    graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                connections.spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    drop((slot, place));
                });
            }
            Some(certificates) => {
                // The handshake runs in the connection's task, within the request-head timeout.
                let (acceptor, http, watcher) =
                    (certificates.acceptor(), http.clone(), graceful.watcher());
                let handshake = limits.header_timeout;
                connections.spawn(async move {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let connection =
                                watcher.watch(http.serve_connection(TokioIo::new(tls), service));
                            if let Err(error) = connection.await {
                                tracing::debug!(%error, "connection ended with an error");
                            }
                        }
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                    drop((slot, place));
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(
                open = connections.len(),
                "requests still running at shutdown were cut off after {} s",
                limits.shutdown_grace.as_secs()
            );
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}
