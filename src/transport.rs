//! Transports and protocols: the callback style of PEP 3156, as a contrast to
//! the fiber and async faces.
//!
//! In this style no code of yours waits. You write a [`Protocol`], a set of
//! callbacks, and the loop calls them: [`connection_made`](Protocol::connection_made)
//! with the connection's [`Transport`], [`data_received`](Protocol::data_received)
//! with each chunk read, [`eof_received`](Protocol::eof_received) when the peer
//! stops sending, and [`connection_lost`](Protocol::connection_lost) once at
//! the end. The transport never blocks either: [`Transport::write`] sends what
//! the socket takes and buffers the rest, and the loop flushes the buffer as
//! the socket drains. Compare `examples/echo_protocol.rs` with
//! `examples/echo_server.rs` (fibers) and `examples/echo_server_async.rs`.
//!
//! ```
//! use fiberloop::net::{TcpListener, TcpStream};
//! use fiberloop::transport::{self, Protocol, Transport};
//! use std::io::{Read, Write};
//!
//! struct Echo(Option<Transport>);
//!
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, transport: &Transport) {
//!         self.0 = Some(transport.clone());
//!     }
//!     fn data_received(&mut self, data: &[u8]) {
//!         let _ = self.0.as_ref().unwrap().write(data);
//!     }
//! }
//!
//! fiberloop::run(|| -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let server = transport::serve(listener, || Echo(None))?;
//!     let mut client = TcpStream::connect(addr)?; // a fiber as the client
//!     client.write_all(b"ping")?;
//!     let mut back = [0; 4];
//!     client.read_exact(&mut back)?;
//!     assert_eq!(&back, b"ping");
//!     server.close();
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! How it runs: each connection is one async task on the loop, the *driver*,
//! which owns the protocol and the socket. It reads while reading is on,
//! calls the protocol, flushes the write buffer, and ends by calling
//! `connection_lost`. Because the driver owns the protocol, callbacks are
//! never re-entered: a callback that crosses a write-buffer mark gets its
//! [`pause_writing`](Protocol::pause_writing) call right after it returns,
//! not from inside `write` as in asyncio.
//!
//! A panic in a callback ends only that connection: its driver task stops,
//! the socket closes (without `connection_lost`), and the loop and the other
//! connections go on. That holds for every callback, `connection_made`
//! included, and for [`serve`]'s protocol factory.
//!
//! A transport belongs to its loop's thread (it is neither `Send` nor
//! `Sync`); fibers and tasks of that loop may use it too.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::async_net;
use crate::net::{self, Conn};
use crate::sys::Interest;
use crate::task::Task;

/// The callbacks of one connection, called by the loop in this order:
/// `connection_made` once, then `data_received` any number of times, then
/// `eof_received` at most once, then `connection_lost` once.
pub trait Protocol: 'static {
    /// The connection is up. Keep a clone of `transport` to write later.
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// Bytes arrived. `data` is only lent: copy what you keep.
    fn data_received(&mut self, data: &[u8]);

    /// The peer will send no more. Return `true` to keep the transport open
    /// for writing (close it yourself later); the default `false` closes it,
    /// after the write buffer is flushed.
    fn eof_received(&mut self) -> bool {
        false
    }

    /// The connection is closed: `None` after [`Transport::close`],
    /// [`Transport::abort`] or an EOF that closed it; the error when reading or
    /// writing failed. Called exactly once; the socket is already released.
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }

    /// The write buffer grew past the high-water mark: stop producing until
    /// [`resume_writing`](Self::resume_writing).
    fn pause_writing(&mut self) {}

    /// The write buffer drained to the low-water mark.
    fn resume_writing(&mut self) {}
}

/// The high-water mark a new transport starts with, as asyncio's (64 KiB).
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// How many reads a driver makes before it lets other tasks run.
const READ_BUDGET: usize = 16;

/// The size of the read buffer the drivers of a thread share.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// The shared read buffer, absent while a driver holds it.
    static READ_BUF: Cell<Option<Box<[u8]>>> = const { Cell::new(None) };
}

/// The two things a driver needs from a socket, whatever its family. The
/// waiting goes through the socket's reactor registration, as everywhere.
trait Endpoint {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    /// One write now, without waiting (`WouldBlock` when the socket is full).
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
}

/// The connected stream types a transport can run over.
trait Socket: AsRawFd + 'static
where
    for<'a> &'a Self: Read + Write,
{
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
}

impl Socket for mio::net::TcpStream {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        mio::net::TcpStream::shutdown(self, how)
    }
}

impl Socket for mio::net::UnixStream {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        mio::net::UnixStream::shutdown(self, how)
    }
}

impl<S: Socket> Endpoint for Arc<Conn<S>>
where
    for<'a> &'a S: Read + Write,
{
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.source.poll_io(Interest::Read, cx, |mut s| s.read(buf))
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.source.poll_io(Interest::Write, cx, |s| {
            crate::sys::send(s.as_raw_fd(), buf)
        })
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match crate::sys::send(self.source.get_ref().as_raw_fd(), buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return result,
            }
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        Socket::shutdown(self.source.get_ref(), how)
    }
}

/// A connected stream to run a protocol over: TCP or Unix, from either face
/// (`From` is implemented for all four types).
pub struct Stream {
    endpoint: Box<dyn Endpoint>,
    peer: Peer,
}

/// The address of a transport's peer.
#[derive(Debug, Clone)]
pub enum Peer {
    /// A TCP peer.
    Tcp(SocketAddr),
    /// A Unix-domain peer (usually unnamed).
    Unix(std::os::unix::net::SocketAddr),
    /// The address could not be read (the peer already left, for example).
    Unknown,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => addr.fmt(f),
            Peer::Unix(addr) => match addr.as_pathname() {
                Some(path) => path.display().fmt(f),
                None => f.write_str("(unnamed unix socket)"),
            },
            Peer::Unknown => f.write_str("(unknown peer)"),
        }
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream").field("peer", &self.peer).finish()
    }
}

impl From<net::TcpStream> for Stream {
    /// Also sets `TCP_NODELAY`, as asyncio does for its TCP transports: a
    /// transport's writes are already whole messages, and Nagle's delay would
    /// only hold them back.
    fn from(stream: net::TcpStream) -> Stream {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().map_or(Peer::Unknown, Peer::Tcp);
        Stream {
            endpoint: Box::new(stream.into_inner()),
            peer,
        }
    }
}

impl From<async_net::TcpStream> for Stream {
    fn from(stream: async_net::TcpStream) -> Stream {
        Stream::from(net::TcpStream::from(stream))
    }
}

impl From<net::UnixStream> for Stream {
    fn from(stream: net::UnixStream) -> Stream {
        let peer = stream.peer_addr().map_or(Peer::Unknown, Peer::Unix);
        Stream {
            endpoint: Box::new(stream.inner),
            peer,
        }
    }
}

impl From<async_net::UnixStream> for Stream {
    fn from(stream: async_net::UnixStream) -> Stream {
        Stream::from(net::UnixStream::from(stream))
    }
}

/// The loop's handle on one connection, given to the protocol in
/// [`Protocol::connection_made`]. Clones share the connection.
#[derive(Clone)]
pub struct Transport {
    shared: Rc<Shared>,
}

struct Shared {
    /// The socket; taken (and so closed) when the connection ends.
    endpoint: RefCell<Option<Box<dyn Endpoint>>>,
    state: RefCell<State>,
    peer: Peer,
    /// Set while the driver runs: wakes from inside it are not needed.
    driving: Cell<bool>,
}

struct State {
    /// Bytes accepted by `write` and not yet sent: `buffer[sent..]`.
    buffer: Vec<u8>,
    sent: usize,
    high: usize,
    low: usize,
    /// The buffer passed the high mark and has not drained to the low one.
    writing_paused: bool,
    /// `pause_writing` is owed to the protocol (a `write` crossed the mark).
    pause_due: bool,
    reading: bool,
    eof_received: bool,
    /// `close` was called: flush, then end.
    closing: bool,
    /// `write_eof` was called: flush, then shut down the write half.
    eof_requested: bool,
    eof_sent: bool,
    /// `abort` was called, or a write failed: end now.
    abort: Option<Option<io::Error>>,
    waker: Option<Waker>,
}

impl State {
    fn pending(&self) -> &[u8] {
        &self.buffer[self.sent..]
    }

    fn consume(&mut self, n: usize) {
        self.sent += n;
        if self.sent == self.buffer.len() {
            self.buffer.clear();
            self.sent = 0;
        } else if self.sent > self.buffer.len() / 2 {
            self.buffer.drain(..self.sent);
            self.sent = 0;
        }
    }
}

impl Transport {
    fn new(stream: Stream) -> Transport {
        Transport {
            shared: Rc::new(Shared {
                endpoint: RefCell::new(Some(stream.endpoint)),
                state: RefCell::new(State {
                    buffer: Vec::new(),
                    sent: 0,
                    high: DEFAULT_HIGH_WATER,
                    low: DEFAULT_HIGH_WATER / 4,
                    writing_paused: false,
                    pause_due: false,
                    reading: true,
                    eof_received: false,
                    closing: false,
                    eof_requested: false,
                    eof_sent: false,
                    abort: None,
                    waker: None,
                }),
                peer: stream.peer,
                driving: Cell::new(false),
            }),
        }
    }

    /// Wakes the driver, unless it is the caller.
    fn kick(&self, state: &State) {
        if !self.shared.driving.get() {
            if let Some(waker) = &state.waker {
                waker.wake_by_ref();
            }
        }
    }

    /// Sends `data`, or as much as the socket takes now, and buffers the rest
    /// for the loop to send; never waits. A failure to send ends the
    /// connection and reaches the protocol as `connection_lost(Some(error))`.
    ///
    /// # Errors
    /// `BrokenPipe` when the transport is closing or closed, or its write half
    /// was shut with [`write_eof`](Self::write_eof): the data was not taken.
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        let mut state = self.shared.state.borrow_mut();
        if state.closing || state.eof_requested || state.abort.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write on a closing transport",
            ));
        }
        let endpoint = self.shared.endpoint.borrow();
        let Some(endpoint) = endpoint.as_ref() else {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write on a closed transport",
            ));
        };
        let mut data = data;
        if state.pending().is_empty() {
            match endpoint.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    state.abort = Some(Some(e));
                    self.kick(&state);
                    return Ok(());
                }
            }
        }
        if !data.is_empty() {
            state.buffer.extend_from_slice(data);
            if !state.writing_paused && state.pending().len() > state.high {
                state.writing_paused = true;
                state.pause_due = true;
            }
            self.kick(&state);
        }
        Ok(())
    }

    /// Sends everything buffered, then shuts down the write half (the peer
    /// reads EOF); reading goes on.
    pub fn write_eof(&self) {
        let mut state = self.shared.state.borrow_mut();
        state.eof_requested = true;
        self.kick(&state);
    }

    /// Stops reading, sends everything buffered, then closes the connection
    /// and calls `connection_lost(None)`.
    pub fn close(&self) {
        let mut state = self.shared.state.borrow_mut();
        state.closing = true;
        self.kick(&state);
    }

    /// Closes the connection now, dropping whatever is buffered, and calls
    /// `connection_lost(None)`.
    pub fn abort(&self) {
        let mut state = self.shared.state.borrow_mut();
        if state.abort.is_none() {
            state.abort = Some(None);
        }
        self.kick(&state);
    }

    /// Whether the transport is closing or closed.
    pub fn is_closing(&self) -> bool {
        let state = self.shared.state.borrow();
        state.closing || state.abort.is_some() || self.shared.endpoint.borrow().is_none()
    }

    /// Stops calling `data_received` until [`resume_reading`](Self::resume_reading);
    /// the kernel buffers what arrives meanwhile and, once full, the peer's
    /// writes wait (TCP flow control).
    pub fn pause_reading(&self) {
        self.shared.state.borrow_mut().reading = false;
    }

    /// Resumes reading after [`pause_reading`](Self::pause_reading).
    pub fn resume_reading(&self) {
        let mut state = self.shared.state.borrow_mut();
        state.reading = true;
        self.kick(&state);
    }

    /// Whether the transport is reading (not paused).
    pub fn is_reading(&self) -> bool {
        self.shared.state.borrow().reading
    }

    /// How many bytes wait in the write buffer.
    pub fn write_buffer_size(&self) -> usize {
        self.shared.state.borrow().pending().len()
    }

    /// Sets the write buffer's marks: past `high` bytes the protocol gets
    /// `pause_writing`, and at `low` or below `resume_writing`. `None` for
    /// `high` means [`DEFAULT_HIGH_WATER`]; `None` for `low` means `high / 4`
    /// (asyncio's rules).
    ///
    /// # Errors
    /// `InvalidInput` when `low` exceeds `high`.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        let high = high.unwrap_or(DEFAULT_HIGH_WATER);
        let low = low.unwrap_or(high / 4);
        if low > high {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("low-water mark {low} exceeds high-water mark {high}"),
            ));
        }
        let mut state = self.shared.state.borrow_mut();
        state.high = high;
        state.low = low;
        self.kick(&state); // the protocol may now be past a mark
        Ok(())
    }

    /// Whether the write buffer is past the high mark (and has not drained to
    /// the low one): the state `pause_writing`/`resume_writing` report. Those
    /// calls come after the callback that crossed the mark returns, so a
    /// callback writing in a loop checks this instead.
    pub fn is_writing_paused(&self) -> bool {
        self.shared.state.borrow().writing_paused
    }

    /// The marks: `(low, high)`, as asyncio's `get_write_buffer_limits`.
    pub fn write_buffer_limits(&self) -> (usize, usize) {
        let state = self.shared.state.borrow();
        (state.low, state.high)
    }

    /// The peer's address.
    pub fn peer(&self) -> &Peer {
        &self.shared.peer
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("peer", &self.shared.peer)
            .field("closing", &self.is_closing())
            .field("write_buffer_size", &self.write_buffer_size())
            .finish()
    }
}

/// Runs `protocol` over `stream`: calls `connection_made` now, then lets the
/// loop drive it. Returns the transport (the protocol got a clone of it).
///
/// ```
/// use fiberloop::net::UnixStream;
/// use fiberloop::transport::{self, Protocol};
/// use std::io::Read;
///
/// struct Greeter;
/// impl Protocol for Greeter {
///     fn connection_made(&mut self, transport: &transport::Transport) {
///         transport.write(b"hello\n").unwrap();
///         transport.close();
///     }
///     fn data_received(&mut self, _: &[u8]) {}
/// }
///
/// fiberloop::run(|| {
///     let (a, mut b) = UnixStream::pair().unwrap();
///     transport::attach(a, Greeter).unwrap();
///     let mut text = String::new();
///     b.read_to_string(&mut text).unwrap();
///     assert_eq!(text, "hello\n");
/// });
/// ```
///
/// # Errors
/// `NotFound` when the thread has no event loop; `Other` when
/// `connection_made` panicked (the connection is closed then, and nothing
/// else is affected).
pub fn attach<S: Into<Stream>, P: Protocol>(stream: S, mut protocol: P) -> io::Result<Transport> {
    no_loop_check()?;
    let transport = Transport::new(stream.into());
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        protocol.connection_made(&transport);
    }));
    if made.is_err() {
        // As for any callback: this connection ends, nothing else does.
        *transport.shared.endpoint.borrow_mut() = None;
        return Err(io::Error::other(
            "Protocol::connection_made panicked; the connection was closed",
        ));
    }
    crate::task::spawn(Driver {
        transport: transport.clone(),
        protocol,
        done: false,
    })
    .detach();
    Ok(transport)
}

fn no_loop_check() -> io::Result<()> {
    crate::rt::scheduler::with_core(|_| ()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "transports need a fiberloop event loop on this thread",
        )
    })
}

/// A listening socket to [`serve`]: TCP or Unix, from either face.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(async_net::TcpListener),
    /// A Unix-domain listener.
    Unix(async_net::UnixListener),
}

impl From<net::TcpListener> for Listener {
    fn from(listener: net::TcpListener) -> Listener {
        Listener::Tcp(listener.into())
    }
}

impl From<async_net::TcpListener> for Listener {
    fn from(listener: async_net::TcpListener) -> Listener {
        Listener::Tcp(listener)
    }
}

impl From<net::UnixListener> for Listener {
    fn from(listener: net::UnixListener) -> Listener {
        Listener::Unix(listener.into())
    }
}

impl From<async_net::UnixListener> for Listener {
    fn from(listener: async_net::UnixListener) -> Listener {
        Listener::Unix(listener)
    }
}

impl Listener {
    async fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| s.into()),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| s.into()),
        }
    }
}

/// A server started by [`serve`]. Dropping it leaves the server running.
#[derive(Debug)]
pub struct Server {
    acceptor: Task<()>,
}

impl Server {
    /// Stops accepting and closes the listening socket (at the loop's next
    /// turn). Connections already made go on.
    pub fn close(self) {
        self.acceptor.cancel();
    }
}

/// Accepts connections on `listener` and runs a protocol made by `factory`
/// over each, as asyncio's `create_server`. An `accept` that fails (out of
/// descriptors, say) is skipped: the listener backs off by itself.
///
/// # Errors
/// `NotFound` when the thread has no event loop.
pub fn serve<L, F, P>(listener: L, mut factory: F) -> io::Result<Server>
where
    L: Into<Listener>,
    F: FnMut() -> P + 'static,
    P: Protocol,
{
    no_loop_check()?;
    let listener = listener.into();
    let acceptor = crate::task::spawn(async move {
        loop {
            let Ok(stream) = listener.accept().await else {
                continue;
            };
            // A factory that panics costs this connection only (the stream
            // is dropped, so the client sees it closed); so does a
            // `connection_made` that panics (`attach` reports it).
            let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut factory));
            if let Ok(protocol) = made {
                let _ = attach(stream, protocol);
            }
        }
    });
    Ok(Server { acceptor })
}

/// The task that runs one connection: reads into the protocol, flushes the
/// write buffer, and delivers `connection_lost` at the end.
struct Driver<P> {
    transport: Transport,
    protocol: P,
    done: bool,
}

/// What a step of the driver decided.
enum Step {
    /// Go on.
    Continue,
    /// Wait for readiness or a transport call.
    Wait,
    /// The connection ended, with this error if it failed.
    End(Option<io::Error>),
}

impl<P: Protocol> Driver<P> {
    /// Sends buffered bytes and applies `write_eof`/`close`; tells the
    /// protocol about crossed marks.
    fn flush(&mut self, cx: &mut Context<'_>) -> Step {
        let shared = &self.transport.shared;
        let mut state = shared.state.borrow_mut();
        if let Some(error) = state.abort.take() {
            return Step::End(error);
        }
        let guard = shared.endpoint.borrow();
        let Some(endpoint) = guard.as_ref() else {
            return Step::End(None);
        };
        while !state.pending().is_empty() {
            match endpoint.poll_write(cx, state.pending()) {
                Poll::Ready(Ok(n)) => state.consume(n),
                Poll::Ready(Err(e)) => return Step::End(Some(e)),
                Poll::Pending => break,
            }
        }
        let pending = state.pending().len();
        if pending == 0 {
            if state.closing {
                return Step::End(None);
            }
            if state.eof_requested && !state.eof_sent {
                state.eof_sent = true;
                if let Err(e) = endpoint.shutdown(Shutdown::Write) {
                    return Step::End(Some(e));
                }
            }
        }
        // A `write` that crossed the high mark set `pause_due`; deliver it
        // even if the buffer drained since, so pauses and resumes pair up.
        let mut pause = std::mem::take(&mut state.pause_due);
        if !state.writing_paused && pending > state.high {
            state.writing_paused = true; // the marks were lowered
            pause = true;
        }
        let resume = state.writing_paused && pending <= state.low;
        if resume {
            state.writing_paused = false;
        }
        drop(state);
        drop(guard);
        if pause {
            self.protocol.pause_writing();
        }
        if resume {
            self.protocol.resume_writing();
        }
        Step::Continue
    }

    /// One read into the protocol, if reading is on.
    fn read(&mut self, cx: &mut Context<'_>) -> Step {
        let shared = &self.transport.shared;
        {
            let state = shared.state.borrow();
            if !state.reading || state.eof_received || state.closing {
                return Step::Wait;
            }
        }
        // One read buffer per thread, lent to whichever driver reads: the
        // protocol only borrows the bytes, so idle connections hold none.
        let mut buf = READ_BUF
            .with(Cell::take)
            .unwrap_or_else(|| vec![0; READ_CHUNK].into_boxed_slice());
        let read = shared
            .endpoint
            .borrow()
            .as_ref()
            .map(|endpoint| endpoint.poll_read(cx, &mut buf));
        let step = match read {
            None => Step::End(None), // closed under us
            Some(Poll::Pending) => Step::Wait,
            Some(Poll::Ready(Err(e))) => Step::End(Some(e)),
            Some(Poll::Ready(Ok(0))) => {
                shared.state.borrow_mut().eof_received = true;
                if !self.protocol.eof_received() {
                    shared.state.borrow_mut().closing = true;
                }
                Step::Continue
            }
            Some(Poll::Ready(Ok(n))) => {
                self.protocol.data_received(&buf[..n]);
                Step::Continue
            }
        };
        READ_BUF.with(|cell| cell.set(Some(buf)));
        step
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Option<Option<io::Error>> {
        for _ in 0..READ_BUDGET {
            if let Step::End(error) = self.flush(cx) {
                return Some(error);
            }
            match self.read(cx) {
                Step::Continue => {}
                Step::Wait => {
                    // A callback may have written or closed: flush once more.
                    return match self.flush(cx) {
                        Step::End(error) => Some(error),
                        _ => None,
                    };
                }
                Step::End(error) => return Some(error),
            }
        }
        cx.waker().wake_by_ref(); // out of budget: let others run, then go on
        None
    }
}

// The protocol is never pinned: the driver only lends it `&mut`.
impl<P> Unpin for Driver<P> {}

impl<P: Protocol> Future for Driver<P> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(());
        }
        let shared = Rc::clone(&this.transport.shared);
        {
            let mut state = shared.state.borrow_mut();
            if !state
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                state.waker = Some(cx.waker().clone());
            }
        }
        shared.driving.set(true);
        let ended = this.step(cx);
        shared.driving.set(false);
        match ended {
            None => Poll::Pending,
            Some(error) => {
                this.done = true;
                // Release the socket before telling the protocol.
                let endpoint = shared.endpoint.borrow_mut().take();
                drop(endpoint);
                {
                    let mut state = shared.state.borrow_mut();
                    state.waker = None;
                    state.buffer = Vec::new();
                    state.sent = 0;
                }
                this.protocol.connection_lost(error);
                Poll::Ready(())
            }
        }
    }
}

impl<P> Drop for Driver<P> {
    fn drop(&mut self) {
        // Cancelled with its loop: release the socket even while clones of
        // the transport live on.
        if !self.done {
            drop(self.transport.shared.endpoint.borrow_mut().take());
        }
    }
}
