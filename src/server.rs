//! Serving [`crate::api`] over TCP: HTTP/1.1 with timeouts, each request tagged with its peer's address, and a
//! graceful stop.
//!
//! `warp::serve` offers none of the timeouts, so this is the same loop with them: a client gets
//! [`Limits::header_read`] to send a request's head, counted from the moment the connection waits for one, so
//! the same limit closes idle keep-alive connections and ones that trickle their headers (slowloris). Bodies
//! have their own limit in [`crate::filters`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

use crate::Route;
use crate::filters::PeerAddr;

/// After the stop signal, how long connections already taken may take to deliver a request before the idle ones
/// are closed.
const ACCEPTED_GRACE: Duration = Duration::from_millis(300);

/// How long clients may take, and how many may be connected at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's head, from when the connection starts waiting for one.
    pub header_read: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time requests in flight get to finish once the stop signal arrives.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(15),
            max_connections: 4096,
            drain: Duration::from_secs(20),
        }
    }
}

/// How a server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every request in flight finished.
    Drained,
    /// [`Limits::drain`] ran out with requests still in flight; they were dropped.
    DrainTimedOut,
}

/// Serves `api` on `listener` until `shutdown` resolves; then stops accepting, lets requests in flight finish
/// (closing idle connections at once) and returns.
pub async fn serve(
    listener: TcpListener,
    api: Route,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Stopped {
    let service = warp::service(api);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut stopping = false;
    loop {
        let accepted = if stopping {
            // Connections the kernel already completed wait in the backlog: closing the listener would reset
            // them, though their clients saw them established. Serve those, then stop.
            match futures_util::FutureExt::now_or_never(listener.accept()) {
                Some(Ok((stream, peer))) => Some((stream, peer, None)),
                _ => break,
            }
        } else {
            tokio::select! {
                () = &mut shutdown => {
                    stopping = true;
                    continue;
                }
                accepted = accept(&listener, &slots) => accepted.map(|(s, p, slot)| (s, p, Some(slot))),
            }
        };
        let Some((stream, peer, slot)) = accepted else {
            continue;
        };
        let service = service.clone();
        let handler = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(PeerAddr(peer));
            let mut service = service.clone();
            async move {
                service
                    .call(request)
                    .await
                    .map_err(|never: Infallible| match never {})
            }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read)
            .serve_connection(TokioIo::new(stream), handler);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                log::debug!("connection from {peer} ended: {err}");
            }
            drop(slot);
        });
    }
    drop(listener);
    // hyper's graceful shutdown closes at once every connection it considers idle, and that includes one whose
    // request is still in the socket buffer, unread. Connections already taken get a moment to have it read
    // first; then idle ones close and requests in flight finish.
    tokio::time::sleep(ACCEPTED_GRACE).await;
    tokio::select! {
        () = graceful.shutdown() => Stopped::Drained,
        () = tokio::time::sleep(limits.drain) => Stopped::DrainTimedOut,
    }
}

/// The next connection, once a slot is free. `None` when accepting failed; the loop then tries again.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(
    tokio::net::TcpStream,
    std::net::SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => {
            // Answers are small and written whole: send them without waiting for more to coalesce.
            let _ = stream.set_nodelay(true);
            Some((stream, peer, slot))
        }
        Err(err) => {
            // Out of file descriptors, or a connection reset before it was accepted: wait a moment rather than
            // spin, and carry on.
            log::warn!("accepting a connection failed: {err}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}
