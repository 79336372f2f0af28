//! [`TcpSocket`]: a TCP socket not yet listening or connected, for setting
//! options first (`SO_REUSEPORT` for a listener per loop, buffer sizes,
//! keepalive), as tokio's `TcpSocket`; and the option setters both faces'
//! TCP streams share. Built on `socket2`.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use super::{TcpListener, TcpStream};

/// A TCP socket to configure before it listens or connects.
///
/// A listener per loop, the kernel spreading connections over them
/// (`SO_REUSEPORT`; see docs/multicore.md):
///
/// ```
/// use fiberloop::net::TcpSocket;
///
/// let first = TcpSocket::new_v4()?;
/// first.set_reuseport(true)?;
/// first.bind("127.0.0.1:0".parse().unwrap())?;
/// let addr = first.local_addr()?;
/// let first = first.listen(1024)?;
/// // A second listener on the same port, for another loop.
/// let second = TcpSocket::new_v4()?;
/// second.set_reuseport(true)?;
/// second.bind(addr)?;
/// let second = second.listen(1024)?;
/// assert_eq!(second.local_addr()?, first.local_addr()?);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct TcpSocket {
    socket: Socket,
}

impl TcpSocket {
    /// A new IPv4 TCP socket (non-blocking, close-on-exec).
    ///
    /// # Errors
    /// What `socket(2)` reports (`EMFILE` when out of descriptors).
    pub fn new_v4() -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::IPV4)
    }

    /// A new IPv6 TCP socket.
    ///
    /// # Errors
    /// As [`new_v4`](Self::new_v4).
    pub fn new_v6() -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::IPV6)
    }

    /// A new TCP socket of the family of `addr`.
    ///
    /// # Errors
    /// As [`new_v4`](Self::new_v4).
    pub fn new_for_addr(addr: SocketAddr) -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::for_address(addr))
    }

    fn new(domain: Domain) -> io::Result<TcpSocket> {
        // socket2 sets close-on-exec where the platform has the flag.
        let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        Ok(TcpSocket { socket })
    }

    /// Sets `SO_REUSEADDR` (rebinding a port whose old connections linger
    /// in `TIME_WAIT`); listeners from [`TcpListener::bind`] have it.
    pub fn set_reuseaddr(&self, on: bool) -> io::Result<()> {
        self.socket.set_reuse_address(on)
    }

    /// Reads `SO_REUSEADDR`.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        self.socket.reuse_address()
    }

    /// Sets `SO_REUSEPORT`: several sockets (of one user) may bind the same
    /// address and port, and the kernel spreads incoming connections over
    /// the listening ones by a hash of the connection's addresses.
    pub fn set_reuseport(&self, on: bool) -> io::Result<()> {
        self.socket.set_reuse_port(on)
    }

    /// Reads `SO_REUSEPORT`.
    pub fn reuseport(&self) -> io::Result<bool> {
        self.socket.reuse_port()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.socket.set_tcp_nodelay(on)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.socket.tcp_nodelay()
    }

    /// Binds to `addr` (port 0 picks a free port).
    ///
    /// # Errors
    /// `AddrInUse` when the address is taken (and not shareable).
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.socket.bind(&addr.into())
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket address"))
    }

    /// Starts listening, with room for `backlog` pending connections; the
    /// listener serves either face (`async_net::TcpListener::from`).
    ///
    /// # Errors
    /// What `listen(2)` reports.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        self.socket.listen(backlog)?;
        TcpListener::from_std(self.socket.into())
    }

    /// Connects to `addr`, blocking the calling fiber (or thread) until the
    /// connection is made.
    ///
    /// # Errors
    /// `ConnectionRefused` when nothing listens there; what `connect(2)`
    /// reports otherwise.
    pub fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = self.start_connect(addr)?;
        stream.wait_connected()?;
        Ok(stream)
    }

    /// Connects to `addr` from an async task.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_async(self, addr: SocketAddr) -> io::Result<crate::async_net::TcpStream> {
        let stream = crate::async_net::TcpStream::from(self.start_connect(addr)?);
        stream.wait_connected().await?;
        Ok(stream)
    }

    /// A non-blocking `connect`: in progress until the socket is writable.
    fn start_connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        match self.socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let std: std::net::TcpStream = self.socket.into();
        Ok(TcpStream::from_mio(mio::net::TcpStream::from_std(std)))
    }
}

/// The `socket2` options shared by `TcpSocket` and both faces' TCP streams:
/// keepalive, linger and buffer sizes.
macro_rules! tcp_stream_options {
    ($ty:ty) => {
        impl $ty {
            /// Sets `SO_KEEPALIVE`.
            pub fn set_keepalive(&self, on: bool) -> std::io::Result<()> {
                socket2::SockRef::from(self).set_keepalive(on)
            }

            /// Reads `SO_KEEPALIVE`.
            pub fn keepalive(&self) -> std::io::Result<bool> {
                socket2::SockRef::from(self).keepalive()
            }

            /// Sets `SO_LINGER`: `Some(d)` makes `close` wait up to `d` for
            /// unsent data (`Some(Duration::ZERO)` resets the connection at close).
            pub fn set_linger(&self, linger: Option<std::time::Duration>) -> std::io::Result<()> {
                socket2::SockRef::from(self).set_linger(linger)
            }

            /// Reads `SO_LINGER`.
            pub fn linger(&self) -> std::io::Result<Option<std::time::Duration>> {
                socket2::SockRef::from(self).linger()
            }

            /// Sets `SO_SNDBUF` (the kernel may round or double it).
            pub fn set_send_buffer_size(&self, size: usize) -> std::io::Result<()> {
                socket2::SockRef::from(self).set_send_buffer_size(size)
            }

            /// Reads `SO_SNDBUF`.
            pub fn send_buffer_size(&self) -> std::io::Result<usize> {
                socket2::SockRef::from(self).send_buffer_size()
            }

            /// Sets `SO_RCVBUF` (the kernel may round or double it).
            pub fn set_recv_buffer_size(&self, size: usize) -> std::io::Result<()> {
                socket2::SockRef::from(self).set_recv_buffer_size(size)
            }

            /// Reads `SO_RCVBUF`.
            pub fn recv_buffer_size(&self) -> std::io::Result<usize> {
                socket2::SockRef::from(self).recv_buffer_size()
            }
        }
    };
}
impl std::os::fd::AsFd for TcpSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

tcp_stream_options!(TcpSocket);
tcp_stream_options!(TcpStream);
tcp_stream_options!(crate::async_net::TcpStream);
