//! Serving connections, with the limits `axum::serve` does not expose.
//!
//! Each accepted TCP connection is served by hyper's auto (HTTP/1.1 and
//! h2c) connection builder:
//! - the request head must arrive within `header_timeout` (slowloris); the
//!   same bound closes a keep-alive connection left idle;
//! - a request head larger than the read buffer is refused by hyper with a
//!   bare 431 before it is parsed; anything over
//!   [`api::middleware::MAX_HEADER_BYTES`] gets a 431 problem document from
//!   the API's own layer;
//! - a request body must keep arriving ([`BodyPace`], enforced by the API's
//!   layer, which answers 408);
//! - one client address holds at most `per_address` connections, WebSockets
//!   included; the excess is closed at accept. Trusted proxies are exempt:
//!   every connection they forward comes from their address, so they must
//!   limit per client themselves.
//!
//! At shutdown it stops accepting, tells the WebSocket hub to close every
//! socket with 1001, lets in-flight requests finish (bounded), and waits a
//! little for the sockets' close frames to go out.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::middleware::{BodyPace, ConnectionSlot};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tower::Service;

use crate::Config;

/// hyper's read buffer, which bounds a request head before it is parsed:
/// well above the API's own bound, so that one answers with a problem
/// document, and small enough that a client cannot park much memory.
const READ_BUFFER_BYTES: usize = 4 * api::middleware::MAX_HEADER_BYTES;

/// How long sockets get, at shutdown, to send their close frames.
const SOCKETS_CLOSE_WITHIN: Duration = Duration::from_secs(6);

/// The connection limits of one server.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub header_timeout: Duration,
    pub body_pace: BodyPace,
    pub per_address: usize,
    /// Peers exempt from `per_address`: the trusted proxies.
    pub exempt: Arc<[IpAddr]>,
    /// How long in-flight requests may take to finish at shutdown.
    pub drain_timeout: Duration,
}

impl ConnectionSettings {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Ok(ConnectionSettings {
            header_timeout: Duration::from_secs(config.header_timeout_seconds),
            body_pace: BodyPace {
                grace: Duration::from_secs(config.header_timeout_seconds),
                min_bytes_per_second: config.body_min_bytes_per_second,
            },
            per_address: config.max_connections_per_address,
            exempt: config.trusted_proxy_ips()?.into(),
            // No request outlives the request timeout; allow one more second.
            drain_timeout: Duration::from_secs(config.request_timeout_seconds + 1),
        })
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then calls
/// `going_away` (which closes the WebSockets) and drains.
pub async fn run(
    listener: TcpListener,
    router: Router,
    settings: &ConnectionSettings,
    going_away: impl FnOnce(),
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .max_buf_size(READ_BUFFER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(READ_BUFFER_BYTES as u32);
    let registry = Registry::new(settings.per_address, settings.exempt.clone());
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause, not spin.
                    tracing::warn!(%err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        while connections.try_join_next().is_some() {}
        let Some(slot) = registry.admit(peer.ip()) else {
            metrics::counter!("swiftdrop_connections_refused_total", "reason" => "per_address").increment(1);
            tracing::debug!(%peer, "too many connections from this address; closed");
            drop(stream);
            continue;
        };
        // No Nagle delay: a pushed frame or a response leaves at once.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
        let slot = ConnectionSlot(Arc::new(slot));
        let service = ConnectionService {
            router: router.clone(),
            peer,
            slot: slot.clone(),
            pace: settings.body_pace,
        };
        // The WebSocket route takes this IO back from hyper's upgrade, by
        // its type: keep it a `TokioIo<TcpStream>`.
        let io: TokioIo<TcpStream> = TokioIo::new(stream);
        let connection = builder.serve_connection_with_upgrades(io, service).into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    going_away();
    if tokio::time::timeout(settings.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time; cutting them off");
    }
    // WebSockets (and anything left) hold their slots until they close.
    if tokio::time::timeout(SOCKETS_CLOSE_WITHIN, registry.all_closed())
        .await
        .is_err()
    {
        tracing::warn!(
            open = registry.open(),
            "connections still open at shutdown; cutting them off"
        );
    }
    connections.abort_all();
}

/// One connection's service: the router, with what the API needs to know
/// about the connection put in each request.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    slot: ConnectionSlot,
    pace: BodyPace,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnectionService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(self.peer));
        extensions.insert(self.slot.clone());
        extensions.insert(self.pace);
        // Router is always ready; `call` needs it mutable, so use a clone.
        self.router.clone().call(request.map(axum::body::Body::new))
    }
}

/// Open connections per client address.
struct Registry {
    per_address: usize,
    exempt: Arc<[IpAddr]>,
    counts: Mutex<HashMap<IpAddr, usize>>,
    open: AtomicUsize,
    all_closed: Notify,
}

/// A connection's place in the registry, given back when dropped.
struct Slot {
    registry: Arc<Registry>,
    ip: IpAddr,
}

impl Registry {
    fn new(per_address: usize, exempt: Arc<[IpAddr]>) -> Arc<Registry> {
        Arc::new(Registry {
            per_address: per_address.max(1),
            exempt,
            counts: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
            all_closed: Notify::new(),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut counts = self.counts();
        let count = counts.entry(ip).or_default();
        if *count >= self.per_address && !self.exempt.contains(&ip) {
            return None;
        }
        *count += 1;
        self.open.fetch_add(1, Ordering::AcqRel);
        Some(Slot {
            registry: self.clone(),
            ip,
        })
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    async fn all_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.registry.counts();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
        drop(counts);
        if self.registry.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.registry.all_closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_and_others_theirs() {
        let proxy = IpAddr::from([10, 0, 0, 1]);
        let registry = Registry::new(2, vec![proxy].into());
        let (a, b) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3]));
        let first = registry.admit(a).unwrap();
        let _second = registry.admit(a).unwrap();
        assert!(registry.admit(a).is_none());
        assert!(registry.admit(b).is_some());
        drop(first);
        assert!(registry.admit(a).is_some());
        // A trusted proxy carries many clients: no cap.
        let through_proxy: Vec<_> = (0..10).map(|_| registry.admit(proxy).unwrap()).collect();
        assert_eq!(through_proxy.len(), 10);
    }

    #[tokio::test]
    async fn all_closed_waits_for_the_last_slot() {
        let registry = Registry::new(8, Vec::new().into());
        let slot = registry.admit(IpAddr::from([127, 0, 0, 1])).unwrap();
        let waiting = {
            let registry = registry.clone();
            tokio::spawn(async move { registry.all_closed().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(slot);
        waiting.await.unwrap();
        assert_eq!(registry.open(), 0);
        assert!(registry.counts().is_empty());
    }
}
