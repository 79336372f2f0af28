//! Unix signals, received in a fiber (blocking style) or an async task: the
//! loop's view of `SIGINT`, `SIGTERM`, `SIGHUP`, `SIGUSR1`, ... (asyncio's
//! `add_signal_handler`, tokio's `signal::unix`).
//!
//! A [`Signals`] listener owns a pipe that the process-wide signal handler
//! writes each delivered signal's number into (see `sys::signals`); reading it
//! is ordinary I/O on the loop. Deliveries that arrive while no one waits stay
//! in the pipe, in delivery order, until [`Signals::recv`] takes them: none is
//! lost (unless thousands pile up unread). The kernel's own rules still apply
//! before that: a standard signal sent again before it was delivered is merged
//! into one delivery. Several listeners may take the same signal; each sees
//! every delivery.
//!
//! Installing a listener replaces the signal's default action for the rest of
//! the process (`SIGINT` no longer ends the program): handle it, or exit
//! yourself, as the `graceful_shutdown` pattern does:
//!
//! ```
//! use fiberloop::signal::{Signals, SIGUSR1};
//!
//! fiberloop::run(|| -> std::io::Result<()> {
//!     let signals = Signals::new(&[SIGUSR1])?;
//!     // Someone sends us SIGUSR1 (here: ourselves).
//!     // SAFETY: kill(2) on our own pid with a signal we listen for.
//!     unsafe { libc::kill(libc::getpid(), SIGUSR1) };
//!     assert_eq!(signals.recv()?, SIGUSR1);
//!     Ok(())
//! })
//! .unwrap();
//! ```

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::rt::reactor::Source;
use crate::sys::signals::{forbidden, Listener};
use crate::sys::Interest;

/// Interrupt from the keyboard (Ctrl-C).
pub const SIGINT: i32 = libc::SIGINT;
/// Polite termination request (what `kill` and service managers send).
pub const SIGTERM: i32 = libc::SIGTERM;
/// Hang-up; by convention, "reload your configuration".
pub const SIGHUP: i32 = libc::SIGHUP;
/// Quit from the keyboard (Ctrl-\\).
pub const SIGQUIT: i32 = libc::SIGQUIT;
/// User-defined signal 1.
pub const SIGUSR1: i32 = libc::SIGUSR1;
/// User-defined signal 2.
pub const SIGUSR2: i32 = libc::SIGUSR2;
/// A child process stopped or exited.
pub const SIGCHLD: i32 = libc::SIGCHLD;
/// The terminal window changed size.
pub const SIGWINCH: i32 = libc::SIGWINCH;

/// A listener for a set of signals.
pub struct Signals {
    source: Source<PipeEnd>,
    listener: Listener,
}

/// The read end of a listener's pipe, borrowed from its slot (never closed).
struct PipeEnd(RawFd);

impl AsRawFd for PipeEnd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Signals {
    /// Starts listening for `signals` (numbers such as [`SIGINT`]).
    ///
    /// # Errors
    /// `InvalidInput` for an empty list, or for a signal that cannot be
    /// caught or is a synchronous fault (`SIGKILL`, `SIGSTOP`, `SIGSEGV`,
    /// `SIGBUS`, `SIGILL`, `SIGFPE`); `OutOfMemory` past 64 listeners in the
    /// process; what `pipe2` or `sigaction` report.
    pub fn new(signals: &[i32]) -> io::Result<Signals> {
        if signals.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Signals::new: no signals given",
            ));
        }
        let mut mask = 0u64;
        for &signo in signals {
            if forbidden(signo) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("signal {signo} cannot be listened for"),
                ));
            }
            mask |= 1 << signo;
        }
        let listener = Listener::new(mask)?;
        Ok(Signals {
            source: Source::new(PipeEnd(listener.fd())),
            listener,
        })
    }

    /// Waits for the next delivery and returns its signal number: the fiber
    /// parks (a plain thread blocks) until one arrives.
    ///
    /// # Errors
    /// [`Cancelled`](crate::Cancelled) if called while the fiber is unwinding, `TimedOut`
    /// inside an expired [`timeout`](crate::timeout) scope.
    pub fn recv(&self) -> io::Result<i32> {
        let on = crate::rt::diag::WaitOn::Signal;
        self.source.do_io_on(on, Interest::Read, |_| self.next())
    }

    /// The async face of [`recv`](Self::recv).
    pub async fn recv_async(&self) -> io::Result<i32> {
        self.source.io_async(Interest::Read, |_| self.next()).await
    }

    /// A delivery that has already arrived, if any.
    pub fn try_recv(&self) -> io::Result<Option<i32>> {
        self.listener.read_byte()
    }

    fn next(&self) -> io::Result<i32> {
        self.listener
            .read_byte()?
            .ok_or_else(|| io::ErrorKind::WouldBlock.into())
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals")
            .field("fd", &self.listener.fd())
            .finish()
    }
}
