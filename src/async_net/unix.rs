//! Unix-domain sockets for async tasks: the twins of [`crate::net`]'s
//! Unix types, sharing their registration and convertible with `From`.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use crate::net::{self, Conn};
use crate::sys::Interest;

/// A Unix-domain socket server for async tasks.
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use fiberloop::async_net::{UnixListener, UnixStream};
///
/// let path = std::env::temp_dir().join(format!("fiberloop-adoc-{}.sock", std::process::id()));
/// fiberloop::block_on(async move {
///     let listener = UnixListener::bind(&path)?;
///     let server = fiberloop::task::spawn(async move {
///         let (mut stream, _) = listener.accept().await?;
///         let mut buf = [0; 5];
///         stream.read_exact(&mut buf).await?;
///         stream.write_all(&buf).await
///     });
///     let mut client = UnixStream::connect(&path).await?;
///     client.write_all(b"hello").await?;
///     let mut back = [0; 5];
///     client.read_exact(&mut back).await?;
///     assert_eq!(&back, b"hello");
///     server.await.unwrap()?;
///     std::fs::remove_file(&path)
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct UnixListener {
    inner: net::UnixListener,
}

impl UnixListener {
    /// Binds to `path`, which must not exist yet.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        net::UnixListener::bind(path).map(UnixListener::from)
    }

    /// Waits for a connection. Out of descriptors, the error is returned and
    /// the next call first waits a back-off, as with the blocking face.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let listener = &self.inner;
        let (stream, peer) = listener
            .backoff
            .accept_async(&listener.source, |l| l.accept())
            .await?;
        Ok((UnixStream::from(net::UnixStream::from_mio(stream)), peer))
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl From<net::UnixListener> for UnixListener {
    fn from(inner: net::UnixListener) -> UnixListener {
        UnixListener { inner }
    }
}

impl From<UnixListener> for net::UnixListener {
    fn from(listener: UnixListener) -> net::UnixListener {
        listener.inner
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

/// A connected Unix-domain stream for async tasks. Clones share the socket.
#[derive(Clone)]
pub struct UnixStream {
    inner: Arc<Conn<mio::net::UnixStream>>,
}

impl UnixStream {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    /// `NotFound` when no socket file exists there, `ConnectionRefused` when
    /// no one listens on it.
    pub async fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let stream = UnixStream::from(net::UnixStream::from_mio(mio::net::UnixStream::connect(
            path,
        )?));
        stream
            .inner
            .source
            .io_async(Interest::Write, |s| {
                net::connect_progress(s.take_error(), || s.peer_addr())
            })
            .await?;
        Ok(stream)
    }

    /// A connected pair of sockets (`socketpair(2)`).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = net::UnixStream::pair()?;
        Ok((UnixStream::from(a), UnixStream::from(b)))
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

    /// Shuts down one or both halves; a task waiting on this socket wakes.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io().shutdown(how)
    }
}

super::async_stream_io!(UnixStream);

impl From<net::UnixStream> for UnixStream {
    fn from(stream: net::UnixStream) -> UnixStream {
        UnixStream {
            inner: stream.inner,
        }
    }
}

impl From<UnixStream> for net::UnixStream {
    fn from(stream: UnixStream) -> net::UnixStream {
        net::UnixStream {
            inner: stream.inner,
        }
    }
}

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

/// A Unix-domain datagram socket for async tasks.
#[derive(Debug)]
pub struct UnixDatagram {
    inner: net::UnixDatagram,
}

impl UnixDatagram {
    /// Binds to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        net::UnixDatagram::bind(path).map(UnixDatagram::from)
    }

    /// A socket bound to no address.
    pub fn unbound() -> io::Result<UnixDatagram> {
        net::UnixDatagram::unbound().map(UnixDatagram::from)
    }

    /// A connected pair of datagram sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from(a), UnixDatagram::from(b)))
    }

    async fn io<R>(
        &self,
        interest: Interest,
        mut op: impl FnMut(&mio::net::UnixDatagram) -> io::Result<R>,
    ) -> io::Result<R> {
        self.inner.inner.source.io_async(interest, &mut op).await
    }

    /// Connects to the socket at `path`: `send` and `recv` then use it.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.inner.connect(path)
    }

    /// Sends to the connected peer, waiting while the socket's buffer is full.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io(Interest::Write, |s| s.send(buf)).await
    }

    /// Sends to the socket at `path`.
    pub async fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.io(Interest::Write, |s| s.send_to(buf, path)).await
    }

    /// Waits for a datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io(Interest::Read, |s| s.recv(buf)).await
    }

    /// Waits for a datagram; returns its size and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io(Interest::Read, |s| s.recv_from(buf)).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}

impl From<net::UnixDatagram> for UnixDatagram {
    fn from(inner: net::UnixDatagram) -> UnixDatagram {
        UnixDatagram { inner }
    }
}

impl From<UnixDatagram> for net::UnixDatagram {
    fn from(socket: UnixDatagram) -> net::UnixDatagram {
        socket.inner
    }
}

crate::net::async_socket_std!(
    UnixListener,
    net::UnixListener,
    std::os::unix::net::UnixListener
);
crate::net::async_socket_std!(UnixStream, net::UnixStream, std::os::unix::net::UnixStream);
crate::net::async_socket_std!(
    UnixDatagram,
    net::UnixDatagram,
    std::os::unix::net::UnixDatagram
);

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}
