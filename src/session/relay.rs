//! The relay loop: ONE task per session, both directions, a short `select!` between socket
//! I/O and the shutdown signal. Reads go into big buffers, frames are split off with the
//! sans-IO splitter and handed to [`Handlers`], which append to the other side's output
//! buffer. Writes are coalesced: a side is read until it has nothing more to give (or its
//! peer's output buffer is full), then the output buffers are written and flushed.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

use super::SessionError;
use crate::engine::{AsyncWork, Flow, Handlers, Outputs, SessionCrypto};
use crate::error::Shutdown;
use crate::net::metrics::observe;
use crate::net::metrics::{self, Hist};
use crate::protocol::sqlstate::PgError;
use crate::protocol::{FrameError, MAX_FRAME_LEN, frontend, split_frame};

/// Size of each read buffer, and the least free room a read gets.
pub const READ_CHUNK: usize = 64 * 1024;
/// Stop reading a side while the output buffer towards its peer holds this much.
const HIGH_WATER: usize = 1024 * 1024;

/// Bytes waiting to be written to one side.
#[derive(Default)]
struct Outbox {
    buf: BytesMut,
    unflushed: bool,
}

impl Outbox {
    fn idle(&self) -> bool {
        self.buf.is_empty() && !self.unflushed
    }

    /// Writes everything, then flushes. Pending leaves the state consistent.
    fn poll_drain<W: AsyncWrite + Unpin>(
        &mut self,
        w: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.buf.is_empty() {
            let n = ready!(Pin::new(&mut *w).poll_write(cx, &self.buf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.buf.advance(n);
            self.unflushed = true;
        }
        if self.unflushed {
            ready!(Pin::new(w).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }
}

/// Reads once into `scratch` (already initialized, so TLS readers do not zero it again on
/// every call, as they would with the spare capacity of a `BytesMut`) and appends to `buf`.
fn poll_fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    scratch: &mut [u8],
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let mut rb = ReadBuf::new(scratch);
    ready!(Pin::new(r).poll_read(cx, &mut rb))?;
    let n = rb.filled().len();
    buf.extend_from_slice(rb.filled());
    Poll::Ready(Ok(n))
}

/// What woke the loop.
enum Event {
    Client(usize),
    Upstream(usize),
    /// Shutdown was requested and the session just became idle with everything written.
    Idle,
}

/// How a relay ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    ClientTerminated,
    ClientClosed,
    UpstreamClosed,
    Shutdown,
}

impl End {
    /// For logs and the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            End::ClientTerminated => "client_terminated",
            End::ClientClosed => "client_closed",
            End::UpstreamClosed => "upstream_closed",
            End::Shutdown => "shutdown",
        }
    }
}

/// The two legs of a session and everything in flight between them.
pub struct Relay<C, U> {
    client: C,
    upstream: U,
    client_in: BytesMut,
    upstream_in: BytesMut,
    to_client: Outbox,
    to_upstream: Outbox,
    handlers: Handlers,
    scratch: Box<[u8]>,
    upstream_first: bool,
    draining: bool,
    /// Bytes read from the client and from upstream.
    pub bytes_in: (u64, u64),
    /// What the session tells the metrics and the audit trail (see `net::metrics::observe`).
    pub obs: Option<Box<observe::SessionObs>>,
    /// `listen.max_message_bytes`, and the shutdown deadline (see `net::limits`).
    max_message: usize,
    deadline: Option<watch::Receiver<bool>>,
}

impl<C, U> Relay<C, U>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    /// `pending_to_client` is written to the client first (the end of the startup phase);
    /// `upstream_in` holds bytes already read from upstream but not yet handled.
    pub fn new(client: C, upstream: U, pending_to_client: BytesMut, upstream_in: BytesMut) -> Self {
        let mut upstream_buf = BytesMut::with_capacity(READ_CHUNK);
        upstream_buf.extend_from_slice(&upstream_in);
        Relay {
            client,
            upstream,
            client_in: BytesMut::with_capacity(READ_CHUNK),
            upstream_in: upstream_buf,
            to_client: Outbox {
                buf: pending_to_client,
                unflushed: false,
            },
            to_upstream: Outbox::default(),
            handlers: Handlers::default(),
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
            upstream_first: false,
            draining: false,
            bytes_in: (0, 0),
            obs: None,
            max_message: MAX_FRAME_LEN,
            deadline: None,
        }
    }

    /// Reads whichever side is ready, else writes what is pending; returns what woke it.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Event>> {
        loop {
            let blocked_before = self.backed_up();
            if let Poll::Ready(ev) = self.poll_reads(cx) {
                return Poll::Ready(ev);
            }
            // Neither side has more to give right now (or its peer is backed up): write.
            if let Poll::Ready(Err(e)) = self.to_upstream.poll_drain(&mut self.upstream, cx) {
                return Poll::Ready(Err(e));
            }
            if let Poll::Ready(Err(e)) = self.to_client.poll_drain(&mut self.client, cx) {
                return Poll::Ready(Err(e));
            }
            // A read skipped because its peer was backed up registered no waker: now that the
            // writes made room, poll it again rather than sleeping forever.
            if blocked_before && !self.backed_up() {
                continue;
            }
            if self.draining && self.handlers.is_idle() && self.to_client.idle() {
                return Poll::Ready(Ok(Event::Idle));
            }
            return Poll::Pending;
        }
    }

    /// True when a side is not read because the output towards its peer is full.
    fn backed_up(&self) -> bool {
        self.to_client.buf.len() >= HIGH_WATER || self.to_upstream.buf.len() >= HIGH_WATER
    }

    /// Reads whichever side is ready (alternating priority), skipping a side whose peer's
    /// output buffer is full.
    fn poll_reads(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Event>> {
        self.upstream_first = !self.upstream_first;
        for upstream in [self.upstream_first, !self.upstream_first] {
            if upstream
                && self.to_client.buf.len() < HIGH_WATER
                && let Poll::Ready(r) = poll_fill(
                    &mut self.upstream,
                    &mut self.upstream_in,
                    &mut self.scratch,
                    cx,
                )
            {
                return Poll::Ready(r.map(Event::Upstream));
            }
            if !upstream
                && self.to_upstream.buf.len() < HIGH_WATER
                && let Poll::Ready(r) =
                    poll_fill(&mut self.client, &mut self.client_in, &mut self.scratch, cx)
            {
                return Poll::Ready(r.map(Event::Client));
            }
        }
        Poll::Pending
    }

    fn outputs(&mut self) -> (Outputs<'_>, &mut Handlers) {
        (
            Outputs {
                to_upstream: &mut self.to_upstream.buf,
                to_client: &mut self.to_client.buf,
            },
            &mut self.handlers,
        )
    }

    /// Handles the client's frames with the session's observation in scope, timed.
    fn on_client_data(&mut self) -> Result<Flow, SessionError> {
        let started = std::time::Instant::now();
        let had = self.obs.is_some();
        let displaced = observe::enter(self.obs.take());
        let r = self.client_frames();
        self.obs = observe::exit(displaced, had);
        metrics::observe(Hist::AddedToUpstream, started.elapsed());
        r
    }

    /// Handles the server's frames with the session's observation in scope, timed.
    fn on_upstream_data(&mut self) -> Result<(), SessionError> {
        let started = std::time::Instant::now();
        let had = self.obs.is_some();
        let displaced = observe::enter(self.obs.take());
        let r = self.upstream_frames();
        self.obs = observe::exit(displaced, had);
        metrics::observe(Hist::AddedToClient, started.elapsed());
        r
    }

    fn client_frames(&mut self) -> Result<Flow, SessionError> {
        while !self.handlers.client_held()
            && let Some(frame) =
                split_frame(&mut self.client_in, self.max_message).map_err(too_long)?
        {
            let (mut out, h) = self.outputs();
            if h.frontend(frame, &mut out)? == Flow::Terminate {
                return Ok(Flow::Terminate);
            }
        }
        Ok(Flow::Continue)
    }

    fn upstream_frames(&mut self) -> Result<(), SessionError> {
        if self.handlers.stalled() {
            return Ok(());
        }
        while let Some(frame) = split_frame(&mut self.upstream_in, MAX_FRAME_LEN)
            .map_err(SessionError::UpstreamFrame)?
        {
            let (mut out, h) = self.outputs();
            h.backend(frame, &mut out)?;
            if h.stalled() {
                break;
            }
        }
        Ok(())
    }

    /// Awaits what the encryption layer asked for (catalog refresh after DDL, key reload and
    /// retry of the held frame), then handles the rest of the upstream input.
    async fn do_work(&mut self) -> Result<(), SessionError> {
        while let Some((work, enc)) = self.handlers.take_work() {
            enc.refresh(work.refresh()).await;
            if let AsyncWork::ReloadKeys(frame) = work {
                let had = self.obs.is_some();
                let displaced = observe::enter(self.obs.take());
                let (mut out, h) = self.outputs();
                let r = h.backend(frame, &mut out);
                self.obs = observe::exit(displaced, had);
                r?;
                if !self.handlers.stalled() {
                    self.on_upstream_data()?;
                }
            }
        }
        Ok(())
    }

    /// The largest client message to buffer whole, and the shutdown deadline.
    pub fn set_limits(&mut self, max_message: usize, deadline: watch::Receiver<bool>) {
        self.max_message = max_message;
        self.deadline = Some(deadline);
    }

    /// Turns on field encryption for this session.
    pub fn set_crypto(&mut self, crypto: SessionCrypto) {
        self.handlers.set_crypto(crypto, &mut self.to_upstream.buf);
    }

    /// Relays until either side ends, an error, or shutdown at an idle point.
    pub async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<End, SessionError> {
        self.draining = *shutdown.borrow();
        if !self.upstream_in.is_empty() {
            self.on_upstream_data()?;
        }
        if !self.client_in.is_empty() && self.on_client_data()? == Flow::Terminate {
            return Ok(End::ClientTerminated);
        }
        // Created once: registering with the shared watch channel takes its lock, which must
        // not happen per message. After it fires the branch is disabled for good.
        let mut stop_signal = std::pin::pin!(shutdown.changed());
        let mut deadline = self.deadline.take();
        let mut deadline_signal = std::pin::pin!(async move {
            match deadline.as_mut() {
                Some(rx) => drop(rx.wait_for(|reached| *reached).await),
                None => std::future::pending().await,
            }
        });
        loop {
            if self.draining && self.handlers.is_idle() && self.to_client.idle() {
                let msg = PgError::from(Shutdown::Drained);
                self.to_client.buf.extend_from_slice(&msg.encode());
                self.to_upstream
                    .buf
                    .extend_from_slice(&frontend::terminate());
                return Ok(End::Shutdown);
            }
            let event = tokio::select! {
                biased;
                ev = poll_fn(|cx| self.poll_io(cx)) => ev?,
                // The only change is to "drain"; a dropped sender means the proxy is gone.
                _ = &mut stop_signal, if !self.draining => {
                    self.draining = true;
                    continue;
                }
                // The shutdown timeout passed with the session still busy: end it now, as
                // PostgreSQL's fast shutdown does.
                () = &mut deadline_signal => {
                    let msg = PgError::from(Shutdown::Deadline);
                    self.to_client.buf.extend_from_slice(&msg.encode());
                    self.to_upstream
                        .buf
                        .extend_from_slice(&frontend::terminate());
                    return Ok(End::Shutdown);
                }
            };
            match event {
                Event::Client(0) => return Ok(End::ClientClosed),
                Event::Upstream(0) => return Ok(End::UpstreamClosed),
                Event::Client(n) => {
                    self.bytes_in.0 += n as u64;
                    metrics::bytes(true, n);
                    self.do_work().await?;
                    if self.on_client_data()? == Flow::Terminate {
                        return Ok(End::ClientTerminated);
                    }
                }
                Event::Upstream(n) => {
                    self.bytes_in.1 += n as u64;
                    metrics::bytes(false, n);
                    self.on_upstream_data()?;
                    self.do_work().await?;
                    // Client input held for the proxy's own question, now answered.
                    if !self.client_in.is_empty()
                        && !self.handlers.client_held()
                        && self.on_client_data()? == Flow::Terminate
                    {
                        return Ok(End::ClientTerminated);
                    }
                }
                Event::Idle => {}
            }
        }
    }

    /// Bytes already read from the client (after login) that the relay must handle first.
    pub fn push_client_input(&mut self, bytes: &[u8]) {
        self.client_in.extend_from_slice(bytes);
    }

    /// Appends a message for the client (e.g. a FATAL error before closing).
    pub fn send_to_client(&mut self, bytes: &[u8]) {
        self.to_client.buf.extend_from_slice(bytes);
    }

    /// Writes what is still buffered (bounded by the caller's timeout) and closes both legs
    /// (TLS close_notify, then the TCP write side).
    pub async fn close(&mut self, end: Option<End>) {
        if end != Some(End::ClientClosed) && end != Some(End::ClientTerminated) {
            let _ = poll_fn(|cx| self.to_client.poll_drain(&mut self.client, cx)).await;
        }
        if end == Some(End::ClientClosed) {
            self.to_upstream
                .buf
                .extend_from_slice(&frontend::terminate());
        }
        if end != Some(End::UpstreamClosed) {
            let _ = poll_fn(|cx| self.to_upstream.poll_drain(&mut self.upstream, cx)).await;
        }
        let _ = self.client.shutdown().await;
        let _ = self.upstream.shutdown().await;
        if end.is_none() {
            self.linger().await;
        }
    }

    /// A lingering close after an error: the client may still be sending (the message that
    /// ended the session, say); closing with its bytes unread would reset the connection, and
    /// a reset makes the client's kernel discard the FATAL before the client reads it. So read
    /// and drop what it sends until it closes too, for at most [`LINGER`].
    async fn linger(&mut self) {
        let mut sink = vec![0u8; 16 * 1024];
        let _ = tokio::time::timeout(LINGER, async {
            while matches!(self.client.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// How long [`Relay::linger`] reads a client's last bytes after an error.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// A client message over `listen.max_message_bytes` is its own error (the client is told
/// which setting); any other framing error is a protocol violation.
fn too_long(e: FrameError) -> SessionError {
    match e {
        FrameError::TooLong { len, max } => SessionError::MessageTooLong { len, max },
        e => SessionError::ClientFrame(e),
    }
}

#[cfg(test)]
mod tests;
