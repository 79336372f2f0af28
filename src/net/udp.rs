//! UDP: [`UdpSocket`], blocking the calling fiber only.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use super::{each_addr, Timeout, ToSocketAddrs};
use crate::rt::reactor::Source;
use crate::sys::Interest;

/// A UDP socket. Like [`std::net::UdpSocket`], with calls that block only the
/// calling fiber.
///
/// ```
/// use fiberloop::net::UdpSocket;
///
/// fiberloop::run(|| -> std::io::Result<()> {
///     let a = UdpSocket::bind("127.0.0.1:0")?;
///     let b = UdpSocket::bind("127.0.0.1:0")?;
///     let b_addr = b.local_addr()?;
///     let receiver = fiberloop::spawn(move || {
///         let mut buf = [0; 16];
///         let (n, _from) = b.recv_from(&mut buf).unwrap();
///         buf[..n].to_vec()
///     });
///     a.send_to(b"ping", b_addr)?;
///     assert_eq!(receiver.join().unwrap(), b"ping");
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct UdpSocket {
    source: Source<mio::net::UdpSocket>,
    read_timeout: Timeout,
    write_timeout: Timeout,
}

impl UdpSocket {
    /// Binds to `addr` (port 0 picks a free port).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(&addr, mio::net::UdpSocket::bind).map(UdpSocket::from_mio)
    }

    /// Wraps a std socket, switching it to non-blocking mode.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket::from_mio(mio::net::UdpSocket::from_std(socket)))
    }

    fn from_mio(socket: mio::net::UdpSocket) -> UdpSocket {
        UdpSocket {
            source: Source::new(socket),
            read_timeout: Timeout::default(),
            write_timeout: Timeout::default(),
        }
    }

    pub(crate) fn into_source(self) -> Source<mio::net::UdpSocket> {
        self.source
    }

    fn io(&self) -> &mio::net::UdpSocket {
        self.source.get_ref()
    }

    /// Sends `buf` to `target` (the first address it resolves to).
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], target: A) -> io::Result<usize> {
        let target = *target.resolve()?.first().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.source
            .do_io(Interest::Write, self.write_timeout.get(), |s| {
                s.send_to(buf, target)
            })
    }

    /// Receives one datagram, returning its length and sender. A datagram
    /// longer than `buf` is truncated.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.source
            .do_io(Interest::Read, self.read_timeout.get(), |s| {
                s.recv_from(buf)
            })
    }

    /// Receives one datagram without removing it from the queue.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.source
            .do_io(Interest::Read, self.read_timeout.get(), |s| {
                s.peek_from(buf)
            })
    }

    /// Sets the default destination for [`send`](Self::send) and the only
    /// source [`recv`](Self::recv) accepts.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(&addr, |addr| self.io().connect(addr))
    }

    /// Sends to the connected address.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.source
            .do_io(Interest::Write, self.write_timeout.get(), |s| s.send(buf))
    }

    /// Receives from the connected address.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.source
            .do_io(Interest::Read, self.read_timeout.get(), |s| s.recv(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io().local_addr()
    }

    /// The connected address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io().peer_addr()
    }

    /// Limits how long a receive waits; past it the call fails with `TimedOut`.
    ///
    /// # Errors
    /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout.set(timeout)
    }

    /// Limits how long a send waits; past it the call fails with `TimedOut`.
    ///
    /// # Errors
    /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.write_timeout.set(timeout)
    }

    /// The receive timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.read_timeout.get())
    }

    /// The send timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.write_timeout.get())
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io().set_broadcast(on)
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io().set_ttl(ttl)
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io().take_error()
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.io().as_raw_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}
