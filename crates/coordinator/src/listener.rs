//! The HTTP listener, on hyper's HTTP/1 connection builder rather than `axum::serve`, because
//! a coordinator reachable by others must bound what a connection may cost:
//! - a header-read timeout (a client sending headers a byte at a time is cut off);
//! - an idle timeout for keep-alive connections;
//! - a cap on concurrent HTTP connections (a semaphore), so idle or slow clients cannot use up
//!   the process's file descriptors; at the cap, idle keep-alive connections are asked to
//!   close and a new connection waits briefly for a slot, then is closed;
//! - a cap on requests per keep-alive connection;
//! - the Host check against DNS rebinding (see [`HostCheck`]).
//!
//! Upgrades (the event socket at `/video/connect`) are served with `with_upgrades()`. Once a
//! connection has upgraded, hyper hands the socket over and its connection future ends: the
//! permit and the idle timer go with it, and the socket's own health checks take over.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::time::Instant;

use crate::error::{codes, ApiError};
use crate::state::Limits;

/// How long a connection beyond the cap waits for a slot before it is closed.
const SLOT_WAIT: Duration = Duration::from_millis(250);
/// After a stop, how long in-flight requests have to finish before connections are cut.
const DRAIN: Duration = Duration::from_secs(2);
/// Pause after a failed accept (out of descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Which `Host` headers the listener answers.
///
/// A listener on a loopback address is only for programs on this machine. A web page the user
/// opens can still reach it: through DNS rebinding, `evil.example` first resolves to the
/// attacker's server and then to 127.0.0.1, and the browser treats the coordinator as
/// `evil.example`'s origin. Such requests carry `Host: evil.example`, so a loopback listener
/// answers only hosts that name the loopback interface, with its port.
///
/// A listener on any other address (`serve` on a LAN) is reached by whatever address or name
/// the network gives it, which the coordinator cannot know; it accepts any Host. Rebinding a
/// name to a LAN address is the network's to prevent (DNS rebinding protection in the resolver),
/// and such a coordinator requires tokens for everything that is not public anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostCheck {
    Any,
    Loopback { port: u16 },
}

impl HostCheck {
    pub fn for_addr(addr: SocketAddr) -> Self {
        if addr.ip().is_loopback() {
            HostCheck::Loopback { port: addr.port() }
        } else {
            HostCheck::Any
        }
    }

    /// Whether a request's `Host` header value is allowed.
    pub fn allows(self, host: Option<&str>) -> bool {
        match self {
            HostCheck::Any => true,
            HostCheck::Loopback { port } => host.is_some_and(|h| is_loopback_host(h, port)),
        }
    }
}

/// `localhost`, an address in 127.0.0.0/8 or `[::1]`, with `port` (or no port if it is 80).
fn is_loopback_host(host: &str, port: u16) -> bool {
    let (name, given_port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        let given = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        match inside.parse::<std::net::Ipv6Addr>() {
            Ok(ip) if ip.is_loopback() => {}
            _ => return false,
        }
        (None, given)
    } else {
        match host.split_once(':') {
            Some((name, p)) => (Some(name), Some(p)),
            None => (Some(host), None),
        }
    };
    let port_ok = match given_port {
        None => port == 80,
        Some(p) => {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>() == Ok(port)
        }
    };
    let name_ok = match name {
        None => true,
        Some(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| IpAddr::V4(ip).is_loopback())
        }
    };
    port_ok && name_ok
}

fn host_refusal() -> Response {
    ApiError::new(
        codes::NOT_ALLOWED,
        StatusCode::FORBIDDEN,
        "this coordinator only answers requests addressed to localhost or a loopback address \
         with its port (the Host header)",
    )
    .into_response()
}

/// What the idle timer and the cap need to know about a connection.
struct Activity {
    /// When the connection started.
    origin: Instant,
    /// Milliseconds after `origin` of the last request's start or end.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    served: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.origin.elapsed().as_millis().min(u64::MAX as u128) as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }
}

/// Counts a request as in flight until dropped (also when the request is cancelled).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Stop taking requests: idle connections close, in-flight ones finish.
    Draining,
    /// Cut every connection.
    Cut,
}

/// What every connection task shares.
#[derive(Clone)]
struct Shared {
    app: Router,
    limits: Limits,
    host_check: HostCheck,
    http: Arc<hyper::server::conn::http1::Builder>,
    phase: watch::Receiver<Phase>,
    /// Bumped when the cap is reached: idle connections close to make room.
    shed: watch::Receiver<u64>,
}

/// Serves `app` on `listener` until `stop` fires (or is dropped), then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    host_check: HostCheck,
    mut stop: oneshot::Receiver<()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let cap = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS) as u32;
    let slots = Arc::new(Semaphore::new(cap as usize));
    let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
    let (shed_tx, shed_rx) = watch::channel(0u64);
    let shared = Shared {
        app,
        limits,
        host_check,
        http: Arc::new(http),
        phase: phase_rx,
        shed: shed_rx,
    };
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stop => break,
        };
        let (tcp, peer) = match accepted {
            Ok((tcp, peer)) => (tcp, peer),
            Err(e) => {
                tracing::warn!(target: "coordinator", error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                shed_tx.send_modify(|n| *n = n.wrapping_add(1));
                let waited = tokio::select! {
                    waited = tokio::time::timeout(SLOT_WAIT, slots.clone().acquire_owned()) => waited,
                    _ = &mut stop => break,
                };
                match waited {
                    Ok(Ok(permit)) => permit,
                    _ => {
                        tracing::debug!(target: "coordinator", "connection closed: at the connection cap");
                        drop(tcp);
                        continue;
                    }
                }
            }
        };
        // Small frames both ways: send each at once rather than waiting to batch (Nagle).
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            serve_connection(tcp, peer, shared).await;
            drop(permit);
        });
    }
    // Free the port first, then let in-flight requests finish for a moment.
    drop(listener);
    let _ = phase_tx.send(Phase::Draining);
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(cap)).await;
    let _ = phase_tx.send(Phase::Cut);
}

async fn serve_connection(tcp: tokio::net::TcpStream, peer: SocketAddr, shared: Shared) {
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        let app = shared.app.clone();
        let host_check = shared.host_check;
        let max_requests = shared.limits.max_requests_per_connection.max(1);
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let in_flight = InFlight::start(&activity);
            let app = app.clone();
            async move {
                let number = in_flight.0.served.fetch_add(1, Ordering::Relaxed) + 1;
                let host = req
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok());
                let mut response = if host_check.allows(host) {
                    let mut app = app;
                    let mut req = req.map(Body::new);
                    // Who is asking, for the per-address rate limits (axum's `ConnectInfo`).
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    tower_service::Service::call(&mut app, req)
                        .await
                        .unwrap_or_else(|never: Infallible| match never {})
                } else {
                    host_refusal()
                };
                if number >= max_requests && response.status() != StatusCode::SWITCHING_PROTOCOLS {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let conn = shared
        .http
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(conn);
    let idle = shared.limits.http_idle_timeout;
    let mut phase = shared.phase;
    let mut shed = shared.shed;
    // Only calls for room made after this connection started concern it.
    shed.borrow_and_update();
    let mut closing = false;
    loop {
        let idle_at = activity.last() + idle;
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(target: "coordinator", error = %e, "connection ended");
                }
                return;
            }
            _ = tokio::time::sleep_until(idle_at), if !closing => {
                if !activity.busy() && activity.last() + idle <= Instant::now() {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            changed = shed.changed(), if !closing => {
                if changed.is_err() {
                    return;
                }
                if !activity.busy() {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            changed = phase.changed() => {
                let now = *phase.borrow_and_update();
                if changed.is_err() || now == Phase::Cut {
                    return;
                }
                if now == Phase::Draining && !closing {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_with_the_port_are_allowed() {
        let check = HostCheck::Loopback { port: 4880 };
        for host in [
            "localhost:4880",
            "LocalHost:4880",
            "127.0.0.1:4880",
            "127.1.2.3:4880",
            "[::1]:4880",
        ] {
            assert!(check.allows(Some(host)), "{host}");
        }
        for host in [
            "evil.example:4880",
            "localhost",
            "localhost:80",
            "localhost:4881",
            "localhost:+4880",
            "localhost:",
            "localhost.:4880",
            "a.localhost:4880",
            "10.0.0.1:4880",
            "[::2]:4880",
            "[::1]x:4880",
            "[::1",
            "::1:4880",
            "127.0.0.1:4880:4880",
            "",
        ] {
            assert!(!check.allows(Some(host)), "{host}");
        }
        assert!(!check.allows(None));
        assert!(HostCheck::Loopback { port: 80 }.allows(Some("localhost")));
        assert!(HostCheck::Any.allows(Some("evil.example")));
        assert!(HostCheck::Any.allows(None));
    }

    #[test]
    fn the_check_follows_the_bound_address() {
        assert_eq!(
            HostCheck::for_addr("127.0.0.1:9".parse().unwrap()),
            HostCheck::Loopback { port: 9 }
        );
        assert_eq!(
            HostCheck::for_addr("[::1]:9".parse().unwrap()),
            HostCheck::Loopback { port: 9 }
        );
        assert_eq!(
            HostCheck::for_addr("0.0.0.0:9".parse().unwrap()),
            HostCheck::Any
        );
        assert_eq!(
            HostCheck::for_addr("192.168.1.5:9".parse().unwrap()),
            HostCheck::Any
        );
    }
}
