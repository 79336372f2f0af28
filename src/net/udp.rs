//! UDP: [`UdpSocket`], blocking the calling fiber only.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
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

    /// The std socket, deregistered from its loop and still in
    /// non-blocking mode (`set_nonblocking(false)` restores std's blocking
    /// behaviour).
    ///
    /// # Errors
    /// None today; the `Result` leaves room for platforms that need a call.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        Ok(self.source.into_inner().into())
    }

    fn from_mio(socket: mio::net::UdpSocket) -> UdpSocket {
        UdpSocket {
            source: Source::new(socket),
            read_timeout: Timeout::default(),
            write_timeout: Timeout::default(),
        }
    }

    pub(crate) fn from_source(source: Source<mio::net::UdpSocket>) -> UdpSocket {
        UdpSocket {
            source,
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
    /// Joins the IPv4 multicast group `group` on the interface with address
    /// `interface` (`Ipv4Addr::UNSPECIFIED` lets the kernel pick).
    pub fn join_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.io().join_multicast_v4(group, interface)
    }

    /// Leaves an IPv4 multicast group joined with
    /// [`join_multicast_v4`](Self::join_multicast_v4).
    pub fn leave_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.io().leave_multicast_v4(group, interface)
    }

    /// Joins the IPv6 multicast group `group` on interface index `interface`
    /// (0 lets the kernel pick).
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io().join_multicast_v6(group, interface)
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io().leave_multicast_v6(group, interface)
    }

    /// Sets `IP_MULTICAST_LOOP`: whether this host's own multicast
    /// datagrams come back to it.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.io().set_multicast_loop_v4(on)
    }

    /// Sets `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.io().set_multicast_ttl_v4(ttl)
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io().set_broadcast(on)
    }

    /// Reads `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io().broadcast()
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

super::socket_traits!(UdpSocket, std::net::UdpSocket);

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
