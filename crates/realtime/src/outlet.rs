//! The write side of one WebSocket connection, shared by the hub and the
//! connection's own task.
//!
//! A push is written by whoever pushes it, straight into the kernel: a
//! broadcast to 10,000 sockets is 10,000 non-blocking writes of one frame
//! encoded once, with no task woken and no per-socket queue touched. Only
//! what the kernel does not take at once goes into the socket's backlog,
//! which the connection task drains when the socket turns writable; a
//! backlog past its limit means a client too slow to keep, and pushes stop.
//!
//! The WebSocket library keeps the read side and writes its own frames
//! (greeting, replies, pongs, close) through [`SocketIo`], which funnels
//! them into the same outlet, so frames from both writers never interleave.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes a socket may owe its client before it counts as too slow.
pub const BACKLOG_LIMIT: usize = 256 * 1024;

/// Why an outlet stopped taking pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Its backlog outgrew [`BACKLOG_LIMIT`].
    Slow,
    /// The client said nothing for too long.
    Idle,
    /// The connection is closing (its task said so).
    Closing,
    /// Writing failed: the peer is gone.
    Broken,
    /// The server is shutting down: say goodbye (1001).
    GoingAway,
}

/// What became of one push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// In the kernel's hands, or queued behind earlier bytes.
    Accepted,
    /// Refused because this push overflowed the backlog: the client is
    /// being let go now.
    Overflowed,
    /// Refused: the outlet had already stopped.
    Refused,
}

struct State {
    /// Bytes accepted but not yet written, in order.
    backlog: VecDeque<Bytes>,
    backlog_len: usize,
    stopped: Option<Stop>,
    /// The connection task, woken when the backlog grows or pushes stop.
    task: Option<Waker>,
    last_heard: Instant,
}

pub struct Outlet {
    stream: Arc<TcpStream>,
    state: Mutex<State>,
}

/// Encodes a server-to-client text frame (unmasked, unfragmented).
pub fn text_frame(payload: &[u8]) -> Bytes {
    frame(0x1, payload)
}

/// A ping with no payload.
pub fn ping_frame() -> Bytes {
    frame(0x9, &[])
}

fn frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    out.put_u8(0x80 | opcode);
    match payload.len() {
        len @ 0..=125 => out.put_u8(len as u8),
        len @ 126..=0xFFFF => {
            out.put_u8(126);
            out.put_u16(len as u16);
        }
        len => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
    out.extend_from_slice(payload);
    out.freeze()
}

impl Outlet {
    pub fn new(stream: Arc<TcpStream>) -> Arc<Outlet> {
        Arc::new(Outlet {
            stream,
            state: Mutex::new(State {
                backlog: VecDeque::new(),
                backlog_len: 0,
                stopped: None,
                task: None,
                last_heard: Instant::now(),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Pushes one encoded frame, whole, after anything queued before it.
    pub fn push(&self, frame: &Bytes) -> Pushed {
        let mut state = self.state();
        if state.stopped.is_some() {
            return Pushed::Refused;
        }
        match self.write_or_queue(&mut state, frame.clone()) {
            Ok(()) => Pushed::Accepted,
            Err(stop) => {
                Self::stop_locked(&mut state, stop);
                if stop == Stop::Slow {
                    Pushed::Overflowed
                } else {
                    Pushed::Refused
                }
            }
        }
    }

    /// Writes what the kernel takes now and queues the rest; fails if the
    /// socket is broken or the queue would outgrow its limit.
    fn write_or_queue(&self, state: &mut State, mut bytes: Bytes) -> Result<(), Stop> {
        if state.backlog.is_empty() {
            let written = self.write_now(&bytes).map_err(|_| Stop::Broken)?;
            if written == bytes.len() {
                return Ok(());
            }
            bytes = bytes.slice(written..);
        }
        if state.backlog_len + bytes.len() > BACKLOG_LIMIT {
            return Err(Stop::Slow);
        }
        state.backlog_len += bytes.len();
        state.backlog.push_back(bytes);
        if let Some(task) = &state.task {
            task.wake_by_ref();
        }
        Ok(())
    }

    /// Writes without waiting; returns how much the kernel took.
    fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < bytes.len() {
            match self.stream.try_write(&bytes[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(written)
    }

    /// Writes the backlog as far as the socket allows; ready once empty.
    fn poll_drain_locked(&self, state: &mut State, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(front) = state.backlog.front_mut() {
            match self.stream.try_write(front) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    state.backlog_len -= n;
                    if n == front.len() {
                        state.backlog.pop_front();
                    } else {
                        bytes::Buf::advance(front, n);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    // Not writable after all: wait for the next edge.
                    if self.stream.poll_write_ready(cx)?.is_pending() {
                        return Poll::Pending;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// The connection task's side: drains the backlog whenever the socket
    /// can take more, and resolves when pushes stop, with the reason.
    pub fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<Stop> {
        let mut state = self.state();
        if !state.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            state.task = Some(cx.waker().clone());
        }
        if let Some(stop) = state.stopped {
            return Poll::Ready(stop);
        }
        if let Poll::Ready(Err(_)) = self.poll_drain_locked(&mut state, cx) {
            Self::stop_locked(&mut state, Stop::Broken);
            return Poll::Ready(Stop::Broken);
        }
        Poll::Pending
    }

    /// Resolves when pushes stop (see [`Outlet::poll_stopped`]).
    pub async fn stopped(&self) -> Stop {
        std::future::poll_fn(|cx| self.poll_stopped(cx)).await
    }

    /// Stops pushes (the first reason wins) and wakes the connection task.
    pub fn stop(&self, reason: Stop) {
        Self::stop_locked(&mut self.state(), reason);
    }

    fn stop_locked(state: &mut State, reason: Stop) {
        if state.stopped.is_none() {
            state.stopped = Some(reason);
            if let Some(task) = &state.task {
                task.wake_by_ref();
            }
        }
    }

    /// Notes that the client said something.
    pub fn heard(&self) {
        self.state().last_heard = Instant::now();
    }

    /// Stops the outlet as idle if the client has been silent since
    /// `since`; returns whether it did.
    pub fn stop_if_silent_since(&self, since: Instant) -> bool {
        let mut state = self.state();
        if state.stopped.is_none() && state.last_heard < since {
            Self::stop_locked(&mut state, Stop::Idle);
            return true;
        }
        false
    }

    pub fn backlog_len(&self) -> usize {
        self.state().backlog_len
    }
}

/// The connection as the WebSocket library sees it: reads come from the
/// socket, writes go through the outlet (whole, in order with pushes).
pub struct SocketIo {
    stream: Arc<TcpStream>,
    outlet: Arc<Outlet>,
}

impl SocketIo {
    pub fn new(stream: Arc<TcpStream>, outlet: Arc<Outlet>) -> SocketIo {
        SocketIo { stream, outlet }
    }
}

impl AsyncRead for SocketIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            std::task::ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for SocketIo {
    /// Takes the whole buffer (the library hands over whole frames) once
    /// earlier bytes are out, so pushes can never land inside a frame.
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut state = self.outlet.state();
        std::task::ready!(self.outlet.poll_drain_locked(&mut state, cx))?;
        let written = self.outlet.write_now(buf)?;
        if written < buf.len() {
            // The library's own frames are few and small: no limit here.
            let rest = Bytes::copy_from_slice(&buf[written..]);
            state.backlog_len += rest.len();
            state.backlog.push_back(rest);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.outlet.state();
        self.outlet.poll_drain_locked(&mut state, cx)
    }

    /// The socket closes when its last handle goes; flushing is all that
    /// is left to do here.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn pair() -> (Arc<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Arc::new(server), client)
    }

    #[test]
    fn frames_carry_their_length_in_the_shortest_form() {
        assert_eq!(&text_frame(b"hi")[..], &[0x81, 2, b'h', b'i']);
        assert_eq!(&ping_frame()[..], &[0x89, 0]);
        let medium = text_frame(&[b'x'; 300]);
        assert_eq!(&medium[..4], &[0x81, 126, 0x01, 0x2C]);
        assert_eq!(medium.len(), 304);
        let large = text_frame(&vec![b'x'; 70_000]);
        assert_eq!(&large[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(large[2..10].try_into().unwrap()), 70_000);
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_overflows_and_is_stopped() {
        let (server, mut client) = pair().await;
        let outlet = Outlet::new(server);
        let frame = text_frame(&vec![b'x'; 60_000]);
        let mut pushes = 0;
        let outcome = loop {
            match outlet.push(&frame) {
                Pushed::Accepted => pushes += 1,
                other => break other,
            }
            assert!(pushes < 10_000, "the backlog never filled");
        };
        assert_eq!(outcome, Pushed::Overflowed);
        assert_eq!(outlet.push(&frame), Pushed::Refused);
        assert_eq!(outlet.stopped().await, Stop::Slow);
        // What was accepted is still owed in order: the client reads whole frames.
        let mut header = [0u8; 4];
        client.read_exact(&mut header).await.unwrap();
        assert_eq!(header, [0x81, 126, 0xEA, 0x60]);
    }

    #[tokio::test]
    async fn the_backlog_drains_when_the_client_reads_again() {
        let (server, mut client) = pair().await;
        let outlet = Outlet::new(server);
        let frame = text_frame(&vec![b'y'; 16_000]);
        let mut sent = 0usize;
        while outlet.backlog_len() == 0 {
            assert_eq!(outlet.push(&frame), Pushed::Accepted);
            sent += frame.len();
        }
        let serving = {
            let outlet = outlet.clone();
            tokio::spawn(async move { outlet.stopped().await })
        };
        let mut received = vec![0u8; sent];
        client.read_exact(&mut received).await.unwrap();
        assert_eq!(outlet.backlog_len(), 0);
        assert!(received.chunks(frame.len()).all(|f| f == &frame[..]));
        outlet.stop(Stop::Closing);
        assert_eq!(serving.await.unwrap(), Stop::Closing);
    }
}
