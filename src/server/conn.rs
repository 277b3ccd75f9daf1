//! One connection's socket as hyper sees it, with the limits hyper has no setting for, kept where the bytes
//! move:
//!
//! - **Request heads** must arrive within [`Limits::header_read`], counted from when the connection starts
//!   waiting for one, so the same limit ends idle keep-alive connections, silent ones and slowloris. A client
//!   that had started a head gets a JSON `408`; then the connection closes.
//! - **Answers** that make no progress for [`Limits::write_stall`] are abandoned: a client that stops reading
//!   keeps neither its connection nor its send buffer.
//! - **hyper's own answers** to heads it cannot parse (`400`, `414`, `431`) have an empty body; they are
//!   replaced by the API's JSON error ([`error::protocol_error_bytes`]).
//! - **Closing after an early answer** (a `413` or an error sent before the request was read) lingers: the
//!   answer goes out, then a FIN, and what the client is still sending is read and dropped until it closes or
//!   [`Limits::linger`] runs out. Closing with unread bytes would make the kernel send a reset, and a client
//!   (or a proxy such as nginx, still sending the body) that receives it may discard the answer it was sent.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use warp::http::StatusCode;

use super::Limits;
use crate::error;

/// What the request handler tells the connection about the exchange in progress.
#[derive(Debug, Default)]
pub(super) struct Exchange {
    /// A request has been handed to the service and its answer is not back yet.
    busy: AtomicBool,
    /// An answer said `Connection: close`, possibly before its request was read whole.
    linger: AtomicBool,
}

impl Exchange {
    /// A request head arrived whole and goes to the service.
    pub(super) fn begin(&self) {
        self.busy.store(true, Ordering::Relaxed);
    }

    /// The service answered; `closes` when the answer ends the connection.
    pub(super) fn end(&self, closes: bool) {
        if closes {
            self.linger.store(true, Ordering::Relaxed);
        }
        self.busy.store(false, Ordering::Relaxed);
    }

    fn busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    fn lingers(&self) -> bool {
        self.linger.load(Ordering::Relaxed)
    }
}

/// A whole answer of ours, being written in place of what hyper would have sent.
struct Own {
    bytes: Vec<u8>,
    written: usize,
    /// The 408: once it is out, the connection ends.
    ends_connection: bool,
}

enum Closing {
    Open,
    /// FIN sent; reading and dropping until the client closes or the deadline passes.
    Draining(Pin<Box<Sleep>>),
    Closed,
}

/// The socket of one connection, wrapped with the limits described in the module doc.
pub(super) struct Guarded<S> {
    io: S,
    peer: SocketAddr,
    limits: Limits,
    exchange: Arc<Exchange>,
    head_deadline: Pin<Box<Sleep>>,
    head_armed: bool,
    /// Bytes of a request head have arrived since the last request went to the service.
    head_started: bool,
    stall_deadline: Pin<Box<Sleep>>,
    stall_armed: bool,
    own: Option<Own>,
    closing: Closing,
}

impl<S> Guarded<S> {
    pub(super) fn new(io: S, peer: SocketAddr, limits: Limits, exchange: Arc<Exchange>) -> Self {
        let now = Instant::now();
        Self {
            io,
            peer,
            limits,
            exchange,
            head_deadline: Box::pin(tokio::time::sleep_until(now + limits.header_read)),
            head_armed: false,
            head_started: false,
            stall_deadline: Box::pin(tokio::time::sleep_until(now + limits.write_stall)),
            stall_armed: false,
            own: None,
            closing: Closing::Open,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Guarded<S> {
    /// Writes through to the socket, abandoning the connection once no byte has gone out for the stall limit.
    fn write_io(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Ready(result) => {
                self.stall_armed = false;
                Poll::Ready(result)
            }
            Poll::Pending => self.stalled(cx),
        }
    }

    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.stall_armed {
            let deadline = Instant::now() + self.limits.write_stall;
            self.stall_deadline.as_mut().reset(deadline);
            self.stall_armed = true;
        }
        ready!(self.stall_deadline.as_mut().poll(cx));
        log::info!(
            "abandoned the answer to {}: no progress for {:?}",
            self.peer,
            self.limits.write_stall
        );
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading its answer",
        )))
    }

    /// Sends the rest of our own answer.
    fn write_own(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(mut own) = self.own.take() else {
            return Poll::Ready(Ok(()));
        };
        let sent = loop {
            if own.written == own.bytes.len() {
                break Poll::Ready(Ok(()));
            }
            match self.write_io(cx, &own.bytes[own.written..]) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => own.written += n,
                Poll::Ready(Err(err)) => break Poll::Ready(Err(err)),
                Poll::Pending => break Poll::Pending,
            }
        };
        self.own = Some(own);
        sent
    }

    /// FIN, then read and drop until the client closes or the linger deadline passes.
    fn linger(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.closing {
                Closing::Open => {
                    ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
                    let deadline = Instant::now() + self.limits.linger;
                    self.closing = Closing::Draining(Box::pin(tokio::time::sleep_until(deadline)));
                }
                Closing::Draining(deadline) => {
                    if deadline.as_mut().poll(cx).is_ready() {
                        self.closing = Closing::Closed;
                        continue;
                    }
                    let mut scratch = [0u8; 8192];
                    // A few reads per wake, so a fast sender cannot keep this task from yielding.
                    for _ in 0..16 {
                        let mut buf = ReadBuf::new(&mut scratch);
                        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                            Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                            Poll::Ready(_) => {
                                self.closing = Closing::Closed;
                                break;
                            }
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                    if let Closing::Draining(_) = self.closing {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Closing::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.own.as_ref().is_some_and(|own| own.ends_connection) {
            ready!(this.write_own(cx))?;
            ready!(this.linger(cx))?;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not complete in time",
            )));
        }
        if this.exchange.busy() {
            this.head_armed = false;
            this.head_started = false;
        } else {
            if !this.head_armed {
                let deadline = Instant::now() + this.limits.header_read;
                this.head_deadline.as_mut().reset(deadline);
                this.head_armed = true;
            }
            if this.head_deadline.as_mut().poll(cx).is_ready() {
                if !this.head_started {
                    // Idle since its last answer, or silent from the start: nothing to answer, and a 408 on an
                    // idle keep-alive connection could be read as the answer to a request crossing it.
                    return Poll::Ready(Ok(()));
                }
                log::debug!("{}: request head not complete in time", this.peer);
                this.own = Some(Own {
                    bytes: error::protocol_error_bytes(StatusCode::REQUEST_TIMEOUT),
                    written: 0,
                    ends_connection: true,
                });
                return Pin::new(this).poll_read(cx, buf);
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if !this.exchange.busy() && buf.filled().len() > before {
            this.head_started = true;
        }
        read
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Whatever is being written, the connection is not waiting for a head, and what was read before it
        // (a body drained after an early answer) was no head either.
        this.head_armed = false;
        this.head_started = false;
        if this.own.is_some() {
            // hyper is still writing its automatic answer, which ours replaced: take its bytes, send ours.
            ready!(this.write_own(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        if let Some((start, status)) = automatic_answer(buf) {
            if start > 0 {
                return this.write_io(cx, &buf[..start]);
            }
            log::debug!("{}: answering {status} to a malformed request", this.peer);
            this.own = Some(Own {
                bytes: error::protocol_error_bytes(status),
                written: 0,
                ends_connection: false,
            });
            this.exchange.end(true);
            ready!(this.write_own(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        this.write_io(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.write_own(cx))?;
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => this.stalled(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.write_own(cx))?;
        if this.exchange.lingers() || this.own.is_some() {
            this.linger(cx)
        } else {
            Pin::new(&mut this.io).poll_shutdown(cx)
        }
    }

    // Writes arrive as one buffer, so an automatic answer is always seen whole (see `automatic_answer`).
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// Where hyper's own answer to an unparsable head starts in `buf`, and its status. hyper writes it last, with
/// no body, so it is the tail of the buffer: a complete response head with one of the statuses hyper answers
/// parse errors with, and without the `nosniff` header that every answer of the API carries. JSON bodies never
/// hold a raw CR or LF, so no answer of the API can end in something that looks like one.
fn automatic_answer(buf: &[u8]) -> Option<(usize, StatusCode)> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    // The head is a status line, content-length and date: well under this.
    let window = buf.len().saturating_sub(512);
    let start = window + buf[window..].windows(9).rposition(|w| w == b"HTTP/1.1 ")?;
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(&buf[start..]) {
        Ok(httparse::Status::Complete(len)) if start + len == buf.len() => {}
        _ => return None,
    }
    let status = StatusCode::from_u16(response.code?).ok()?;
    let parse_error_status = matches!(
        status,
        StatusCode::BAD_REQUEST
            | StatusCode::URI_TOO_LONG
            | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let ours = response
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("x-content-type-options"));
    (parse_error_status && !ours).then_some((start, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_automatic_answers_are_recognised_at_the_end_of_a_buffer() {
        let automatic = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 02:00:00 GMT\r\n\r\n";
        assert_eq!(
            automatic_answer(automatic),
            Some((0, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE))
        );
        let mut after_an_answer =
            b"HTTP/1.1 200 OK\r\nx-content-type-options: nosniff\r\ncontent-length: 2\r\n\r\n{}"
                .to_vec();
        let start = after_an_answer.len();
        after_an_answer.extend_from_slice(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 02:00:00 GMT\r\n\r\n",
        );
        assert_eq!(
            automatic_answer(&after_an_answer),
            Some((start, StatusCode::BAD_REQUEST))
        );
    }

    #[test]
    fn answers_of_the_api_are_left_alone() {
        let no_content =
            b"HTTP/1.1 204 No Content\r\nx-content-type-options: nosniff\r\ndate: x\r\n\r\n";
        assert_eq!(automatic_answer(no_content), None);
        let ours = b"HTTP/1.1 400 Bad Request\r\nx-content-type-options: nosniff\r\n\r\n";
        assert_eq!(automatic_answer(ours), None);
        let body =
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 20\r\n\r\n{\"detail\": \"x\"}\r\n\r\n";
        assert_eq!(automatic_answer(body), None);
        assert_eq!(automatic_answer(b"{\"detail\":\"HTTP/1.1 400 \"}"), None);
    }
}
