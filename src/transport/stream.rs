//! What a transport runs over: a TCP or Unix stream from either face, and
//! the two operations the driver needs of it.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::async_net;
use crate::net::{self, Conn};
use crate::sys::Interest;

/// The two things a driver needs from a socket, whatever its family. The
/// waiting goes through the socket's reactor registration, as everywhere.
pub(super) trait Endpoint {
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
    pub(super) endpoint: Box<dyn Endpoint>,
    pub(super) peer: Peer,
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
