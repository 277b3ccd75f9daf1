//! Serving [`crate::api`] over TCP: HTTP/1.1 through hyper, with the limits a public service needs, the client
//! address and access log of each request, and a graceful stop.
//!
//! `warp::serve` offers none of the limits, so this is the same loop with them:
//! - connection slots: at most [`Limits::max_connections`] at once, and at most [`Limits::per_address`] from one
//!   client address (an IPv6 /64 counts as one), so no one client can take every slot;
//! - the socket's timeouts and JSON answers for what hyper refuses itself ([`conn`]);
//! - each request's client address, framing check, decoded path and access-log line ([`request`]).
//!
//! Bodies have their own limits in [`crate::filters`].

mod conn;
mod request;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;
use warp::http::{StatusCode, header};

use self::conn::{Exchange, Guarded};
use crate::Route;
use crate::config::TrustProxy;
use crate::error;
use crate::filters::ClientAddr;

/// After the stop signal, how long connections already taken may take to deliver a request before the idle ones
/// are closed.
const ACCEPTED_GRACE: Duration = Duration::from_millis(300);

/// Open files kept for everything but connections: the database, its pool, the listener, logs.
const RESERVED_FILES: u64 = 256;

/// Largest request head (request line and headers) read: past it, `431`. Without it hyper's limit is the size
/// its read buffer happens to reach, so a large head would be refused or served depending on how it arrived.
/// Above the 64 KiB hyper allows a request target, which keeps its own answer, `414`.
const MAX_HEAD_BYTES: usize = 128 * 1024;

/// Most connections served at once, however many files the system allows: each idle one still costs memory.
const MAX_CONNECTIONS: usize = 4096;

/// How long clients may take, and how many may be connected at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's head, from when the connection starts waiting for one; then `408`.
    pub header_read: Duration,
    /// Time an answer may go without a byte of progress (a client that stopped reading) before it is abandoned.
    pub write_stall: Duration,
    /// After an answer sent before its request was read, how long the client's remaining bytes are read away
    /// before the connection closes (see [`conn`]).
    pub linger: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Connections served at once for one client address. Not applied behind a trusted proxy, whose own address
    /// carries every client's connections (the proxy only opens one for a request it has read whole).
    pub per_address: usize,
    /// Time requests in flight get to finish once the stop signal arrives.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(15),
            write_stall: Duration::from_secs(30),
            linger: Duration::from_secs(5),
            max_connections: MAX_CONNECTIONS,
            per_address: MAX_CONNECTIONS / 8,
            drain: Duration::from_secs(20),
        }
    }
}

impl Limits {
    /// The default limits, with as many connections as `open_files` leaves room for.
    pub fn for_open_files(open_files: u64) -> Self {
        let room = open_files.saturating_sub(RESERVED_FILES).max(16);
        let max_connections = usize::try_from(room)
            .unwrap_or(usize::MAX)
            .min(MAX_CONNECTIONS);
        Self {
            max_connections,
            per_address: (max_connections / 8).max(1),
            ..Self::default()
        }
    }
}

/// Raises this process's open-file limit to the most the system allows, and returns the limit in force.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let mut raised = limit;
            // "Unlimited" cannot be set as a soft limit; the kernel's ceiling for open files can.
            raised.rlim_cur = if limit.rlim_max == libc::RLIM_INFINITY {
                std::fs::read_to_string("/proc/sys/fs/nr_open")
                    .ok()
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(1 << 20)
            } else {
                limit.rlim_max
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// Connections the kernel may complete and queue before they are accepted (it caps this at `somaxconn`).
const BACKLOG: i32 = 4096;

/// The listening socket for `host`:`port`. On `::`, IPv4 clients are served too (as IPv4-mapped addresses),
/// whatever the system's default (`net.ipv6.bindv6only`); on a host whose kernel has no IPv6 at all, `::`
/// falls back to IPv4's `0.0.0.0` with a warning, so one setting serves everywhere.
pub fn bind(host: IpAddr, port: u16) -> std::io::Result<TcpListener> {
    match listen_on(SocketAddr::new(host, port)) {
        Err(err) if host == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && no_ipv6(&err) => {
            log::warn!("IPv6 is not available ({err}): listening on IPv4 only");
            listen_on(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
        }
        bound => bound,
    }
}

fn listen_on(address: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    // A restarted server can bind again while the previous one's connections linger in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Whether `err` says this kernel has no IPv6.
fn no_ipv6(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT)
    )
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
/// (closing idle connections at once) and returns. `trust` says where each request's client address comes from.
pub async fn serve(
    listener: TcpListener,
    api: Route,
    limits: Limits,
    trust: TrustProxy,
    shutdown: impl Future<Output = ()>,
) -> Stopped {
    let service = warp::service(api);
    let graceful = GracefulShutdown::new();
    let per_address = if trust.behind_proxy() {
        limits.max_connections
    } else {
        limits.per_address
    };
    let slots = Slots::new(limits.max_connections, per_address);
    let trust = Arc::new(trust);
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
        // An IPv4 client of a socket on `::` arrives as ::ffff:a.b.c.d: it is the IPv4 client a.b.c.d.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let slot = match slot.map(|slot| slots.for_address(slot, peer.ip())) {
            Some(Err(())) => {
                turn_away(stream, peer);
                continue;
            }
            Some(Ok(slot)) => Some(slot),
            None => None,
        };
        let exchange = Arc::new(Exchange::default());
        let handler = {
            let (service, trust, exchange) = (service.clone(), trust.clone(), exchange.clone());
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                exchange.begin();
                let started = Instant::now();
                let client = request::client_address(&trust, peer.ip(), request.headers());
                let line = log::log_enabled!(target: "tasky::access", log::Level::Info)
                    .then(|| request::AccessLine::new(client, &request));
                let refused = request::refusal(&request);
                if let Some(uri) = request::decoded_uri(request.uri()) {
                    *request.uri_mut() = uri;
                }
                request.extensions_mut().insert(ClientAddr(client));
                let mut service = service.clone();
                let exchange = exchange.clone();
                async move {
                    let response = match refused {
                        Some(status) => error::protocol_error(status),
                        None => match service.call(request).await {
                            Ok(response) => response,
                            Err(never) => match never {},
                        },
                    };
                    let closes = response
                        .headers()
                        .get(header::CONNECTION)
                        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                    exchange.end(closes);
                    if let Some(line) = line {
                        line.log(response.status(), started.elapsed());
                    }
                    Ok::<_, Infallible>(response)
                }
            })
        };
        let io = Guarded::new(stream, peer, limits, exchange);
        let connection = http1::Builder::new()
            .max_header_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(io), handler);
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
    slots: &Slots,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = slots.total.clone().acquire_owned().await.ok()?;
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

/// A connection over its address's share: told why in one write that never waits, then closed.
fn turn_away(stream: TcpStream, peer: SocketAddr) {
    log::debug!("{peer}: too many connections from this address");
    // Straight to the socket (still non-blocking): the runtime has not yet seen it writable, so its own
    // `try_write` could refuse to try.
    if let Ok(mut stream) = stream.into_std() {
        let _ = std::io::Write::write(
            &mut stream,
            &error::protocol_error_bytes(StatusCode::SERVICE_UNAVAILABLE),
        );
    }
}

/// Connection slots: a total, and a share per client address.
struct Slots {
    total: Arc<Semaphore>,
    per_address: usize,
    taken: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's slot, given back when it is dropped.
struct Slot {
    _total: OwnedSemaphorePermit,
    address: IpAddr,
    taken: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Slots {
    fn new(total: usize, per_address: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total)),
            per_address,
            taken: Arc::default(),
        }
    }

    /// The slot, counted against `peer`'s share; `Err` when that share is used up.
    fn for_address(&self, total: OwnedSemaphorePermit, peer: IpAddr) -> Result<Slot, ()> {
        let address = share_of(peer);
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let count = taken.entry(address).or_insert(0);
        if *count >= self.per_address {
            return Err(());
        }
        *count += 1;
        Ok(Slot {
            _total: total,
            address,
            taken: self.taken.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = taken.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                taken.remove(&self.address);
            }
        }
    }
}

/// The address whose share a peer uses: itself for IPv4, its /64 for IPv6, since one IPv6 host is given a
/// whole /64 and can pick any address in it.
fn share_of(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_follows_the_open_file_limit() {
        assert_eq!(Limits::for_open_files(1024).max_connections, 768);
        assert_eq!(Limits::for_open_files(1024).per_address, 96);
        assert_eq!(
            Limits::for_open_files(1 << 20).max_connections,
            MAX_CONNECTIONS
        );
        assert_eq!(Limits::for_open_files(100).max_connections, 16);
        let limits = Limits::default();
        assert_eq!(limits.header_read, Duration::from_secs(15));
        assert_eq!(limits.write_stall, Duration::from_secs(30));
    }

    #[test]
    fn one_address_gets_its_share_and_no_more() {
        let slots = Slots::new(4, 2);
        let permit = || slots.total.clone().try_acquire_owned().unwrap();
        let home: IpAddr = "192.0.2.1".parse().unwrap();
        let first = slots.for_address(permit(), home).unwrap();
        let _second = slots.for_address(permit(), home).unwrap();
        assert!(slots.for_address(permit(), home).is_err());
        let _other = slots
            .for_address(permit(), "192.0.2.2".parse().unwrap())
            .unwrap();
        drop(first);
        assert!(slots.for_address(permit(), home).is_ok());
    }

    #[test]
    fn an_ipv6_host_shares_its_64() {
        assert_eq!(
            share_of("2001:db8:1:2:aaaa::1".parse().unwrap()),
            share_of("2001:db8:1:2:bbbb::9".parse().unwrap())
        );
        assert_ne!(
            share_of("2001:db8:1:2::1".parse().unwrap()),
            share_of("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(
            share_of("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
