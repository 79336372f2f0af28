//! Blocking-style networking for fibers: TCP and UDP sockets whose calls block
//! only the calling fiber.
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
//! - Writes never raise `SIGPIPE`: a reset peer gives `BrokenPipe` or
//!   `ConnectionReset` (`send` with `MSG_NOSIGNAL`).

pub(crate) mod addr;
pub(crate) mod tcp;
mod udp;

pub use addr::{Lookup, ToSocketAddrs};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
