//! Blocking-style networking for fibers: TCP, UDP and Unix-domain sockets
//! whose calls block only the calling fiber.
//!
//! The types mirror `std::net` (same method names and error kinds), and
//! [`TcpStream`] implements [`std::io::Read`] and [`std::io::Write`], also for
//! `&TcpStream`, so `BufReader`, `io::copy` and sync crates that take
//! `impl Read + Write` work inside fibers unchanged.
//!
//! Every socket is non-blocking underneath. A call first tries the syscall; only
//! on `WouldBlock` does the fiber park until the reactor reports readiness (see
//! the `reactor` module). Used on a plain thread outside any event loop, the
//! same types behave like std's blocking sockets: they wait with `poll(2)`.
//!
//! Differences from std, all deliberate:
//! - A read or write timeout yields `ErrorKind::TimedOut` (std on Unix yields
//!   `WouldBlock`, which code often mistakes for "try again now").
//! - [`TcpStream::try_clone`] shares one socket between handles (no `dup`), so a
//!   reader fiber and a writer fiber can each own one; `shutdown` through either
//!   wakes the other.
//! - Host names are resolved on a helper thread ([`ToSocketAddrs`]), so a
//!   lookup never stalls the loop; numeric addresses are parsed in place.
//! - `accept` under descriptor exhaustion (`EMFILE`/`ENFILE`) returns the error,
//!   and the next `accept` on that listener first waits a back-off (5 ms,
//!   doubling to 1 s, reset by a success), so a retry loop cannot spin the CPU
//!   on the connection the kernel keeps pending.
//! - Writes never raise `SIGPIPE`, even where the program keeps its default
//!   action: a reset peer gives `BrokenPipe` or `ConnectionReset` (every
//!   stream write, vectored or not, is `send`/`sendmsg` with `MSG_NOSIGNAL`).

pub(crate) mod addr;
pub(crate) mod socket;
pub(crate) mod tcp;
mod udp;
pub(crate) mod unix;

pub use addr::{Lookup, ToSocketAddrs};
pub use socket::TcpSocket;
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::rt::reactor::Source;
use crate::sys::Interest;

/// Where a non-blocking connect stands, from the socket's pending error and
/// its peer address: done, failed, or still in progress (`WouldBlock`). Shared
/// by TCP and Unix streams, and by both faces.
pub(crate) fn connect_progress<A>(
    pending: io::Result<Option<io::Error>>,
    peer: impl FnOnce() -> io::Result<A>,
) -> io::Result<()> {
    if let Some(e) = pending? {
        return Err(e);
    }
    match peer() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e),
    }
}

/// A connected stream's state (TCP or Unix), shared by its clones and by
/// both faces: the registered socket and its timeouts.
pub(crate) struct Conn<S: AsRawFd> {
    pub(crate) source: Source<S>,
    read_timeout: Timeout,
    write_timeout: Timeout,
}

impl<S: AsRawFd> Conn<S> {
    pub(crate) fn new(io: S) -> Conn<S> {
        Conn {
            source: Source::new(io),
            read_timeout: Timeout::default(),
            write_timeout: Timeout::default(),
        }
    }

    /// Runs `op` until it stops saying `WouldBlock`, within the read timeout.
    pub(crate) fn read_with<R>(&self, op: impl FnMut(&S) -> io::Result<R>) -> io::Result<R> {
        self.source
            .do_io(Interest::Read, self.read_timeout.get(), op)
    }

    /// Runs `op` until it stops saying `WouldBlock`, within the write timeout.
    pub(crate) fn write_with<R>(&self, op: impl FnMut(&S) -> io::Result<R>) -> io::Result<R> {
        self.source
            .do_io(Interest::Write, self.write_timeout.get(), op)
    }
}

impl<S: AsRawFd + std::os::fd::AsFd> Conn<S> {
    /// The socket as a std type: moved out when this is the only handle,
    /// else a duplicate descriptor (`dup`), the other handles keeping theirs.
    pub(crate) fn into_std<Std>(self: std::sync::Arc<Self>) -> io::Result<Std>
    where
        Std: From<S> + From<std::os::fd::OwnedFd>,
    {
        match std::sync::Arc::try_unwrap(self) {
            Ok(conn) => Ok(conn.source.into_inner().into()),
            Err(shared) => Ok(shared.source.get_ref().as_fd().try_clone_to_owned()?.into()),
        }
    }
}

/// The descriptor traits and std conversions of a socket type of either
/// face: `AsFd`, `IntoRawFd`, `FromRawFd` and `From<std type>`, built on the
/// type's `AsRawFd`, `from_std` and `into_std`.
macro_rules! socket_traits {
    ($ty:ty, $std:ty) => {
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                crate::sys::borrow_fd(self)
            }
        }

        impl std::os::fd::IntoRawFd for $ty {
            /// The descriptor, as [`into_std`](Self::into_std) hands it out.
            ///
            /// # Panics
            /// Only where `into_std` fails: other handles share the socket
            /// and the process has no descriptor left for the duplicate.
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                match self.into_std() {
                    Ok(socket) => std::os::fd::IntoRawFd::into_raw_fd(socket),
                    Err(e) => panic!("fiberloop: into_raw_fd: {e}"),
                }
            }
        }

        impl From<$std> for $ty {
            /// Wraps the std socket, switching it to non-blocking mode.
            fn from(socket: $std) -> $ty {
                <$ty>::from_std(socket)
                    .expect("fiberloop: setting O_NONBLOCK on an open socket cannot fail")
            }
        }

        crate::sys::from_raw_fd!($ty, $std);
    };
}
pub(crate) use socket_traits;

/// For an async socket type with `From` conversions to and from its fiber
/// twin `$net`: `from_std`, `into_std` (as the twin's) and the
/// [`socket_traits`].
macro_rules! async_socket_std {
    ($ty:ident, $net:ty, $std:ty) => {
        impl $ty {
            /// Wraps a std socket, switching it to non-blocking mode.
            ///
            /// # Errors
            /// What setting `O_NONBLOCK` reports.
            pub fn from_std(socket: $std) -> std::io::Result<$ty> {
                <$net>::from_std(socket).map($ty::from)
            }

            /// The std socket, deregistered and still non-blocking, as the
            /// fiber face's `into_std` gives it.
            ///
            /// # Errors
            /// As the fiber face's `into_std`.
            pub fn into_std(self) -> std::io::Result<$std> {
                <$net>::from(self).into_std()
            }
        }

        crate::net::socket_traits!($ty, $std);
    };
}
pub(crate) use async_socket_std;

/// `Read`/`Write` for a stream type holding `inner: Arc<Conn<S>>` (and for a
/// shared reference to it), plus its timeout accessors and `try_clone`.
macro_rules! stream_io {
    ($ty:ident) => {
        impl std::io::Read for &$ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.inner
                    .read_with(|mut s| std::io::Read::read(&mut s, buf))
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.inner
                    .read_with(|mut s| std::io::Read::read_vectored(&mut s, bufs))
            }
        }

        impl std::io::Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.inner
                    .write_with(|s| crate::sys::send(s.as_raw_fd(), buf))
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.inner
                    .write_with(|s| crate::sys::send_vectored(s.as_raw_fd(), bufs))
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(()) // nothing is buffered in user space
            }
        }

        impl std::io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&*self).read(buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl std::io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                (&*self).write(buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl $ty {
            /// Limits how long a read waits; past it the read fails with
            /// `TimedOut`. `None` waits forever.
            ///
            /// # Errors
            /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
            pub fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
                self.inner.read_timeout.set(timeout)
            }

            /// Limits how long a write waits; past it the write fails with
            /// `TimedOut`.
            ///
            /// # Errors
            /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
            pub fn set_write_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
                self.inner.write_timeout.set(timeout)
            }

            /// The read timeout.
            pub fn read_timeout(&self) -> std::io::Result<Option<Duration>> {
                Ok(self.inner.read_timeout.get())
            }

            /// The write timeout.
            pub fn write_timeout(&self) -> std::io::Result<Option<Duration>> {
                Ok(self.inner.write_timeout.get())
            }

            /// Another handle to the same socket (shared, not `dup`ed), for
            /// example for a writer fiber next to a reader fiber. Timeouts are
            /// shared too.
            pub fn try_clone(&self) -> std::io::Result<$ty> {
                Ok(self.clone())
            }
        }
    };
}
pub(crate) use stream_io;

/// A socket timeout stored lock-free: nanoseconds, 0 meaning none.
#[derive(Debug, Default)]
struct Timeout(AtomicU64);

impl Timeout {
    fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Sets it, with std's rule: `Some(Duration::ZERO)` is invalid.
    fn set(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        let nanos = match timeout {
            None => 0,
            Some(t) if t.is_zero() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "cannot set a 0 duration timeout",
                ))
            }
            Some(t) => u64::try_from(t.as_nanos()).unwrap_or(u64::MAX),
        };
        self.0.store(nanos, Ordering::Relaxed);
        Ok(())
    }
}

/// Tries `f` on each address in turn; returns the first success or the last
/// error (std's rule for `connect` and `bind`).
fn each_addr<A: ToSocketAddrs + ?Sized, T>(
    addr: &A,
    mut f: impl FnMut(std::net::SocketAddr) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let mut last = None;
    for addr in addr.resolve()? {
        match f(addr) {
            Ok(value) => return Ok(value),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}
