//! Async networking: TCP, UDP and Unix-domain sockets for async tasks, on the same reactor
//! registration as the blocking types in [`crate::net`].
//!
//! One internal source type has two faces. [`crate::net::TcpStream`]
//! runs an operation until it stops saying `WouldBlock`, parking the fiber in
//! between; [`TcpStream`] here does the same in `poll` form, leaving the task's
//! waker in the same per-direction slot and returning `Pending`. A socket can
//! change faces with `From` (for example, accept in a fiber and hand the
//! connection to an async task).
//!
//! [`TcpStream`] implements the ecosystem's `futures-io`
//! [`futures_io::AsyncRead`] and [`futures_io::AsyncWrite`],
//! also for `&TcpStream`, so the extension traits of `futures-lite` or
//! `futures` (`read`, `write_all`, `read_exact`, `copy`, ...) work with it.
//!
//! ```
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//! use fiberloop::async_net::{TcpListener, TcpStream};
//!
//! fiberloop::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     let server = fiberloop::task::spawn(async move {
//!         let (mut stream, _) = listener.accept().await?;
//!         let mut buf = [0; 5];
//!         stream.read_exact(&mut buf).await?;
//!         stream.write_all(&buf).await
//!     });
//!     let mut client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut back = [0; 5];
//!     client.read_exact(&mut back).await?;
//!     assert_eq!(&back, b"hello");
//!     server.await.unwrap()
//! })
//! .unwrap();
//! ```
//!
//! Timeouts: wrap any operation in [`time::timeout`](crate::time::timeout);
//! the read and write timeouts of the blocking face do not apply here.
//!
//! One waiter per direction: like the blocking face, a socket remembers one
//! reader and one writer. Two tasks reading the same socket at once would
//! replace each other's waker; give each direction one owner.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use crate::net::addr::resolve_async;
use crate::net::tcp::{connected, AcceptBackoff, Inner};
use crate::net::{self, ToSocketAddrs};
use crate::rt::reactor::Source;
use crate::sys::Interest;

mod unix;
pub use crate::net::TcpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

/// Tries `f` on each resolved address in turn (std's rule), asynchronously.
async fn each_addr_async<A, T, F, Fut>(addr: &A, mut f: F) -> io::Result<T>
where
    A: ToSocketAddrs + ?Sized,
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last = None;
    for addr in resolve_async(addr).await? {
        match f(addr).await {
            Ok(value) => return Ok(value),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// A TCP listener for async tasks.
pub struct TcpListener {
    source: Source<mio::net::TcpListener>,
    backoff: AcceptBackoff,
}

impl TcpListener {
    /// Binds to `addr` (port 0 picks a free port). Host names are resolved off
    /// the loop.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr_async(&addr, |a| {
            std::future::ready(mio::net::TcpListener::bind(a))
        })
        .await
        .map(|l| TcpListener {
            source: Source::new(l),
            backoff: AcceptBackoff::default(),
        })
    }

    /// Waits for a connection. Out of descriptors, the error is returned and the
    /// next call first waits a back-off, as with the blocking face.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self
            .backoff
            .accept_async(&self.source, |l| l.accept())
            .await?;
        Ok((TcpStream::from(net::TcpStream::from_mio(stream)), peer))
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }
}

impl From<net::TcpListener> for TcpListener {
    fn from(listener: net::TcpListener) -> TcpListener {
        TcpListener {
            source: listener.source,
            backoff: listener.backoff,
        }
    }
}

impl From<TcpListener> for net::TcpListener {
    fn from(listener: TcpListener) -> net::TcpListener {
        net::TcpListener {
            source: listener.source,
            backoff: listener.backoff,
        }
    }
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

/// A TCP connection for async tasks. Clones share the socket (one may read
/// while another writes).
#[derive(Clone)]
pub struct TcpStream {
    inner: Arc<Inner>,
}

impl TcpStream {
    /// Connects to `addr`, trying each resolved address in turn.
    ///
    /// # Errors
    /// `ConnectionRefused` when nothing listens there; the last address's error
    /// when all fail.
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr_async(&addr, |addr| async move {
            let stream = TcpStream::from(net::TcpStream::from_mio(mio::net::TcpStream::connect(
                addr,
            )?));
            stream.source().io_async(Interest::Write, connected).await?;
            Ok(stream)
        })
        .await
    }

    /// Waits until a non-blocking connect has finished (or failed).
    pub(crate) async fn wait_connected(&self) -> io::Result<()> {
        self.source().io_async(Interest::Write, connected).await
    }

    fn source(&self) -> &Source<mio::net::TcpStream> {
        &self.inner.source
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source().get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source().get_ref().local_addr()
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.source().get_ref().set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.source().get_ref().nodelay()
    }

    /// Shuts down one or both halves; a task waiting on this socket wakes.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.source().get_ref().shutdown(how)
    }
}

impl From<net::TcpStream> for TcpStream {
    fn from(stream: net::TcpStream) -> TcpStream {
        TcpStream {
            inner: stream.into_inner(),
        }
    }
}

impl From<TcpStream> for net::TcpStream {
    fn from(stream: TcpStream) -> net::TcpStream {
        net::TcpStream::from_inner(stream.inner)
    }
}

/// `futures-io`'s `AsyncRead`/`AsyncWrite` for an async stream type holding
/// `inner: Arc<Conn<S>>` (and for a shared reference to it); `poll_close`
/// shuts down the write half.
macro_rules! async_stream_io {
    ($ty:ident) => {
        impl AsyncRead for &$ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.inner
                    .source
                    .poll_io(Interest::Read, cx, |mut s| s.read(buf))
            }

            fn poll_read_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &mut [IoSliceMut<'_>],
            ) -> Poll<io::Result<usize>> {
                self.inner
                    .source
                    .poll_io(Interest::Read, cx, |mut s| s.read_vectored(bufs))
            }
        }

        impl AsyncWrite for &$ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.inner.source.poll_io(Interest::Write, cx, |s| {
                    crate::sys::send(s.as_raw_fd(), buf)
                })
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.inner.source.poll_io(Interest::Write, cx, |s| {
                    crate::sys::send_vectored(s.as_raw_fd(), bufs)
                })
            }

            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(())) // nothing is buffered in user space
            }

            fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.shutdown(Shutdown::Write))
            }
        }

        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut &*self).poll_read(cx, buf)
            }

            fn poll_read_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &mut [IoSliceMut<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut &*self).poll_read_vectored(cx, bufs)
            }
        }

        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut &*self).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut &*self).poll_write_vectored(cx, bufs)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut &*self).poll_flush(cx)
            }

            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut &*self).poll_close(cx)
            }
        }
    };
}

pub(crate) use async_stream_io;

async_stream_io!(TcpStream);

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.source().get_ref().as_raw_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source().fmt(f)
    }
}

/// A UDP socket for async tasks.
pub struct UdpSocket {
    source: Source<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr` (port 0 picks a free port).
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr_async(&addr, |a| std::future::ready(mio::net::UdpSocket::bind(a)))
            .await
            .map(|s| UdpSocket {
                source: Source::new(s),
            })
    }

    /// Sends `buf` to `target` (the first address it resolves to).
    pub async fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], target: A) -> io::Result<usize> {
        let target = *resolve_async(&target).await?.first().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.source
            .io_async(Interest::Write, |s| s.send_to(buf, target))
            .await
    }

    /// Receives one datagram and its sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.source
            .io_async(Interest::Read, |s| s.recv_from(buf))
            .await
    }

    /// Sets the default destination and the only accepted source.
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr_async(&addr, |a| {
            std::future::ready(self.source.get_ref().connect(a))
        })
        .await
    }

    /// Sends to the connected address.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.source.io_async(Interest::Write, |s| s.send(buf)).await
    }

    /// Receives from the connected address.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.source.io_async(Interest::Read, |s| s.recv(buf)).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }

    /// The connected address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().peer_addr()
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.source.get_ref().set_broadcast(on)
    }

    /// Reads `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.source.get_ref().broadcast()
    }

    /// Joins the IPv4 multicast group `group` on the interface with address
    /// `interface` (`Ipv4Addr::UNSPECIFIED` lets the kernel pick).
    pub fn join_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.source.get_ref().join_multicast_v4(group, interface)
    }

    /// Leaves an IPv4 multicast group joined with
    /// [`join_multicast_v4`](Self::join_multicast_v4).
    pub fn leave_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.source.get_ref().leave_multicast_v4(group, interface)
    }

    /// Joins the IPv6 multicast group `group` on interface index `interface`
    /// (0 lets the kernel pick).
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.source.get_ref().join_multicast_v6(group, interface)
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.source.get_ref().leave_multicast_v6(group, interface)
    }

    /// Sets `IP_MULTICAST_LOOP`: whether this host's own multicast
    /// datagrams come back to it.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.source.get_ref().set_multicast_loop_v4(on)
    }

    /// Sets `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.source.get_ref().set_multicast_ttl_v4(ttl)
    }
}

impl From<net::UdpSocket> for UdpSocket {
    fn from(socket: net::UdpSocket) -> UdpSocket {
        UdpSocket {
            source: socket.into_source(),
        }
    }
}

impl From<UdpSocket> for net::UdpSocket {
    fn from(socket: UdpSocket) -> net::UdpSocket {
        net::UdpSocket::from_source(socket.source)
    }
}

crate::net::async_socket_std!(TcpListener, net::TcpListener, std::net::TcpListener);
crate::net::async_socket_std!(TcpStream, net::TcpStream, std::net::TcpStream);
crate::net::async_socket_std!(UdpSocket, net::UdpSocket, std::net::UdpSocket);

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.source.get_ref().as_raw_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}
