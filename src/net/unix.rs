//! Unix-domain sockets: [`UnixListener`], [`UnixStream`] and [`UnixDatagram`],
//! the TCP and UDP types' twins for local communication, blocking the calling
//! fiber only. The API follows `std::os::unix::net`.

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::tcp::AcceptBackoff;
use super::{stream_io, Conn};
use crate::rt::reactor::Source;

/// A Unix-domain socket server, listening for connections at a path.
///
/// ```
/// use std::io::{Read, Write};
/// use fiberloop::net::{UnixListener, UnixStream};
///
/// let path = std::env::temp_dir().join(format!("fiberloop-doc-{}.sock", std::process::id()));
/// fiberloop::run(move || -> std::io::Result<()> {
///     let listener = UnixListener::bind(&path)?;
///     let server = fiberloop::spawn(move || -> std::io::Result<()> {
///         let (mut stream, _) = listener.accept()?;
///         let mut buf = [0; 5];
///         stream.read_exact(&mut buf)?;
///         stream.write_all(&buf)
///     });
///     let mut client = UnixStream::connect(&path)?;
///     client.write_all(b"hello")?;
///     let mut back = [0; 5];
///     client.read_exact(&mut back)?;
///     assert_eq!(&back, b"hello");
///     server.join().unwrap()?;
///     std::fs::remove_file(&path)
/// })
/// .unwrap();
/// ```
pub struct UnixListener {
    pub(crate) source: Source<mio::net::UnixListener>,
    pub(crate) backoff: AcceptBackoff,
}

impl UnixListener {
    /// Binds to `path`, which must not exist yet (remove a stale socket file
    /// first, as with std).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        mio::net::UnixListener::bind(path).map(UnixListener::from_mio)
    }

    /// Wraps a std listener, switching it to non-blocking mode.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener::from_mio(mio::net::UnixListener::from_std(
            listener,
        )))
    }

    /// The std listener, deregistered from its loop and still in
    /// non-blocking mode (`set_nonblocking(false)` restores std's blocking
    /// behaviour).
    ///
    /// # Errors
    /// None today; the `Result` leaves room for platforms that need a call.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        Ok(self.source.into_inner().into())
    }

    pub(crate) fn from_mio(listener: mio::net::UnixListener) -> UnixListener {
        UnixListener {
            source: Source::new(listener),
            backoff: AcceptBackoff::default(),
        }
    }

    /// Waits for a connection and returns it with the peer's address (usually
    /// unnamed).
    ///
    /// # Errors
    /// What `accept(2)` reports; under descriptor exhaustion the next call
    /// waits a back-off first, as [`TcpListener::accept`](super::TcpListener::accept).
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, peer) = self.backoff.accept(&self.source, |l| l.accept())?;
        Ok((UnixStream::from_mio(stream), peer))
    }

    /// An endless iterator of accepted connections (errors included, as std's).
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.source.get_ref().take_error()
    }
}

super::socket_traits!(UnixListener, std::os::unix::net::UnixListener);
super::socket_traits!(UnixStream, std::os::unix::net::UnixStream);
super::socket_traits!(UnixDatagram, std::os::unix::net::UnixDatagram);

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.source.get_ref().as_raw_fd()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}

/// The iterator of [`UnixListener::incoming`].
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

/// A connected Unix-domain stream socket; `Read` and `Write` (also through
/// `&UnixStream`) block only the calling fiber.
///
/// Clones made with [`try_clone`](Self::try_clone) share the socket, as
/// [`TcpStream`](super::TcpStream)'s do.
#[derive(Clone)]
pub struct UnixStream {
    pub(crate) inner: Arc<Conn<mio::net::UnixStream>>,
}

impl UnixStream {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    /// `NotFound` when no socket file exists there, `ConnectionRefused` when
    /// no one listens on it.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let stream = UnixStream::from_mio(mio::net::UnixStream::connect(path)?);
        // Non-blocking, a connect to a listener with a full backlog is still
        // in progress: it completes once the socket turns writable.
        stream
            .inner
            .write_with(|s| super::connect_progress(s.take_error(), || s.peer_addr()))?;
        Ok(stream)
    }

    /// A connected pair of sockets (`socketpair(2)`).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream::from_mio(a), UnixStream::from_mio(b)))
    }

    /// Wraps a connected std stream, switching it to non-blocking mode.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        Ok(UnixStream::from_mio(mio::net::UnixStream::from_std(stream)))
    }

    /// The std stream, deregistered from its loop and still in
    /// non-blocking mode (`set_nonblocking(false)` restores std's blocking
    /// behaviour). If clones of this stream are alive, it is a duplicate
    /// descriptor (`dup`) and the clones keep working.
    ///
    /// # Errors
    /// What `dup` reports (`EMFILE`) when clones are alive.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        self.inner.into_std()
    }

    pub(crate) fn from_mio(stream: mio::net::UnixStream) -> UnixStream {
        UnixStream {
            inner: Arc::new(Conn::new(stream)),
        }
    }

    fn io(&self) -> &mio::net::UnixStream {
        self.inner.source.get_ref()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io().peer_addr()
    }

    /// Shuts down one or both halves; a fiber blocked on this socket (through
    /// a clone) wakes.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io().shutdown(how)
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io().take_error()
    }
}

stream_io!(UnixStream);

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io().as_raw_fd()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.source.fmt(f)
    }
}

/// A Unix-domain datagram socket.
///
/// ```
/// use fiberloop::net::UnixDatagram;
///
/// fiberloop::run(|| -> std::io::Result<()> {
///     let (a, b) = UnixDatagram::pair()?;
///     let reader = fiberloop::spawn(move || {
///         let mut buf = [0; 16];
///         let n = b.recv(&mut buf).unwrap();
///         buf[..n].to_vec()
///     });
///     a.send(b"datagram")?;
///     assert_eq!(reader.join().unwrap(), b"datagram");
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct UnixDatagram {
    pub(crate) inner: Conn<mio::net::UnixDatagram>,
}

impl UnixDatagram {
    /// Binds to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        mio::net::UnixDatagram::bind(path).map(UnixDatagram::from_mio)
    }

    /// A socket bound to no address (it can send, and receive replies once
    /// connected).
    pub fn unbound() -> io::Result<UnixDatagram> {
        mio::net::UnixDatagram::unbound().map(UnixDatagram::from_mio)
    }

    /// A connected pair of datagram sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = mio::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_mio(a), UnixDatagram::from_mio(b)))
    }

    /// Wraps a std socket, switching it to non-blocking mode.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(true)?;
        Ok(UnixDatagram::from_mio(mio::net::UnixDatagram::from_std(
            socket,
        )))
    }

    /// The std socket, deregistered from its loop and still in
    /// non-blocking mode (`set_nonblocking(false)` restores std's blocking
    /// behaviour).
    ///
    /// # Errors
    /// None today; the `Result` leaves room for platforms that need a call.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixDatagram> {
        Ok(self.inner.source.into_inner().into())
    }

    pub(crate) fn from_mio(socket: mio::net::UnixDatagram) -> UnixDatagram {
        UnixDatagram {
            inner: Conn::new(socket),
        }
    }

    fn io(&self) -> &mio::net::UnixDatagram {
        self.inner.source.get_ref()
    }

    /// Connects to the socket at `path`: `send` and `recv` then use it.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.io().connect(path)
    }

    /// Sends to the connected peer, waiting while the socket's buffer is full.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_with(|s| s.send(buf))
    }

    /// Sends to the socket at `path`.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.inner.write_with(|s| s.send_to(buf, path))
    }

    /// Waits for a datagram from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.recv(buf))
    }

    /// Waits for a datagram; returns its size and sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_with(|s| s.recv_from(buf))
    }

    /// Limits how long `recv`/`recv_from` wait (`TimedOut` past it).
    ///
    /// # Errors
    /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.read_timeout.set(timeout)
    }

    /// Limits how long `send`/`send_to` wait (`TimedOut` past it).
    ///
    /// # Errors
    /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.write_timeout.set(timeout)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io().peer_addr()
    }

    /// Shuts down one or both directions; a blocked fiber wakes.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io().shutdown(how)
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io().take_error()
    }
}

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.io().as_raw_fd()
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.source.fmt(f)
    }
}
