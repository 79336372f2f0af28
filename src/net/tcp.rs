//! TCP: [`TcpListener`] and [`TcpStream`], blocking the calling fiber only.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{each_addr, Conn, ToSocketAddrs};
use crate::rt::reactor::Source;
use crate::sys::Interest;

/// A TCP socket server, listening for connections.
///
/// ```no_run
/// use std::io::{Read, Write};
///
/// fiberloop::run(|| -> std::io::Result<()> {
///     let listener = fiberloop::net::TcpListener::bind("127.0.0.1:7000")?;
///     for stream in listener.incoming() {
///         let mut stream = stream?;
///         fiberloop::spawn(move || {
///             let mut buf = [0; 4096];
///             while let Ok(n @ 1..) = stream.read(&mut buf) {
///                 if stream.write_all(&buf[..n]).is_err() {
///                     break;
///                 }
///             }
///         });
///     }
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct TcpListener {
    pub(crate) source: Source<mio::net::TcpListener>,
    pub(crate) backoff: AcceptBackoff,
}

/// The pause an `accept` takes after the process ran out of descriptors (or
/// memory), so that a retry loop cannot spin on the connection the kernel keeps
/// pending: 5 ms, doubling to 1 s, reset by a success. Shared by both faces.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    /// Milliseconds the next `accept` waits first; 0 when the last one did not
    /// run out of resources.
    ms: AtomicU64,
}

impl AcceptBackoff {
    const START_MS: u64 = 5;
    const MAX_MS: u64 = 1000;

    /// How long the next accept must wait first, if at all.
    fn delay(&self) -> Option<Duration> {
        match self.ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Updates the back-off from an accept's outcome.
    fn record<T>(&self, result: &io::Result<T>) {
        let next = match result {
            Ok(_) => 0,
            Err(e) if is_resource_exhaustion(e) => {
                (self.ms.load(Ordering::Relaxed) * 2).clamp(Self::START_MS, Self::MAX_MS)
            }
            Err(_) => return,
        };
        self.ms.store(next, Ordering::Relaxed);
    }

    /// One blocking `accept` on `listener` (TCP or Unix), after the back-off
    /// if one is due.
    pub(crate) fn accept<L: AsRawFd, S>(
        &self,
        listener: &Source<L>,
        accept: impl FnMut(&L) -> io::Result<S>,
    ) -> io::Result<S> {
        if let Some(delay) = self.delay() {
            crate::sleep(delay);
        }
        let result = listener.do_io(Interest::Read, None, accept);
        self.record(&result);
        result
    }

    /// [`accept`](Self::accept) for async tasks.
    pub(crate) async fn accept_async<L: AsRawFd, S>(
        &self,
        listener: &Source<L>,
        mut accept: impl FnMut(&L) -> io::Result<S>,
    ) -> io::Result<S> {
        if let Some(delay) = self.delay() {
            crate::time::sleep(delay).await;
        }
        let result = listener.io_async(Interest::Read, &mut accept).await;
        self.record(&result);
        result
    }
}

impl TcpListener {
    /// Binds to `addr` (port 0 picks a free port; see [`local_addr`](Self::local_addr)).
    /// `SO_REUSEADDR` is set, as mio and most servers do.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(&addr, mio::net::TcpListener::bind).map(TcpListener::from_mio)
    }

    /// Binds a listener with `SO_REUSEPORT` (and `SO_REUSEADDR`) set, so that
    /// a listener per loop can share `addr` and the kernel spreads
    /// connections over them (see [`TcpSocket`](super::TcpSocket) for other
    /// options, docs/multicore.md for when to use it).
    ///
    /// # Errors
    /// `AddrInUse` when a socket without `SO_REUSEPORT`, or another user's,
    /// holds the address.
    pub fn bind_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
        let socket = super::TcpSocket::new_for_addr(addr)?;
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        socket.listen(1024)
    }

    /// Wraps a std listener, switching it to non-blocking mode.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener::from_mio(mio::net::TcpListener::from_std(
            listener,
        )))
    }

    /// The std listener, deregistered from its loop and still in
    /// non-blocking mode (`set_nonblocking(false)` restores std's blocking
    /// behaviour).
    ///
    /// # Errors
    /// None today; the `Result` leaves room for platforms that need a call.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        Ok(self.source.into_inner().into())
    }

    fn from_mio(listener: mio::net::TcpListener) -> TcpListener {
        TcpListener {
            source: Source::new(listener),
            backoff: AcceptBackoff::default(),
        }
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// # Errors
    /// What `accept(2)` reports. When the process or system is out of
    /// descriptors (`EMFILE`, `ENFILE`) or memory, that error is returned and the
    /// next call waits a back-off first (see the [module docs](super)).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.backoff.accept(&self.source, |l| l.accept())?;
        Ok((TcpStream::from_mio(stream), peer))
    }

    /// An endless iterator of accepted connections (errors included, as std's).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.source.get_ref().set_ttl(ttl)
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.source.get_ref().take_error()
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.source.get_ref().as_raw_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}

/// The iterator of [`TcpListener::incoming`]; it never returns `None`.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

/// A TCP connection. Reading and writing block only the calling fiber.
///
/// Clones made with [`try_clone`](Self::try_clone) share the socket: one fiber
/// can read while another writes, and the socket closes when the last handle is
/// dropped.
#[derive(Clone)]
pub struct TcpStream {
    inner: Arc<Inner>,
}

/// A connection's state, shared by its clones and by both faces.
pub(crate) type Inner = Conn<mio::net::TcpStream>;

/// The connect-progress check both faces run until it stops saying
/// `WouldBlock`: a non-blocking connect is under way until the socket is
/// writable, and then either has a peer or a pending error.
pub(crate) fn connected(stream: &mio::net::TcpStream) -> io::Result<()> {
    super::connect_progress(stream.take_error(), || stream.peer_addr())
}

impl TcpStream {
    /// Connects to `addr`, trying each resolved address in turn.
    ///
    /// # Errors
    /// `ConnectionRefused` when nothing listens there; the last address's error
    /// when all fail.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(&addr, |addr| TcpStream::connect_addr(addr, None))
    }

    /// Connects to `addr`, giving up with `TimedOut` after `timeout`.
    ///
    /// # Errors
    /// `InvalidInput` for a zero timeout (as std); `TimedOut`; see
    /// [`connect`](Self::connect).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_addr(*addr, Some(timeout))
    }

    fn connect_addr(addr: SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        // A non-blocking connect: it is in progress until the socket is writable.
        let stream = TcpStream::from_mio(mio::net::TcpStream::connect(addr)?);
        stream.wait_connected_within(timeout)?;
        Ok(stream)
    }

    /// Waits until a non-blocking connect has finished (or failed).
    pub(crate) fn wait_connected(&self) -> io::Result<()> {
        self.wait_connected_within(None)
    }

    fn wait_connected_within(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.source.do_io(Interest::Write, timeout, connected)
    }

    /// Wraps a connected std stream, switching it to non-blocking mode.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream::from_mio(mio::net::TcpStream::from_std(stream)))
    }

    /// The std stream, deregistered from its loop and still in
    /// non-blocking mode (`set_nonblocking(false)` restores std's blocking
    /// behaviour). If clones of this stream are alive, it is a duplicate
    /// descriptor (`dup`) and the clones keep working.
    ///
    /// # Errors
    /// What `dup` reports (`EMFILE`) when clones are alive.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        self.inner.into_std()
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> TcpStream {
        TcpStream { inner }
    }

    pub(crate) fn into_inner(self) -> Arc<Inner> {
        self.inner
    }

    pub(crate) fn from_mio(stream: mio::net::TcpStream) -> TcpStream {
        TcpStream {
            inner: Arc::new(Conn::new(stream)),
        }
    }

    fn io(&self) -> &mio::net::TcpStream {
        self.inner.source.get_ref()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io().local_addr()
    }

    /// Shuts down the read half, the write half, or both. A fiber blocked on
    /// this socket (through a clone) wakes: its read sees end of file, its
    /// write fails with `BrokenPipe`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io().shutdown(how)
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io().set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io().nodelay()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io().set_ttl(ttl)
    }

    /// Reads without consuming, waiting for data like `read`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.peek(buf))
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io().take_error()
    }
}

super::stream_io!(TcpStream);
super::socket_traits!(TcpStream, std::net::TcpStream);
super::socket_traits!(TcpListener, std::net::TcpListener);

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io().as_raw_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.source.fmt(f)
    }
}
