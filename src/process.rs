//! Subprocesses whose pipes and exit the loop drives: a fiber reads a child's
//! output line by line, or waits for it to exit, while other fibers run
//! (asyncio's `create_subprocess_exec`, tokio's `process`).
//!
//! [`spawn`] starts a [`std::process::Command`] as usual; the piped ends of
//! stdin, stdout and stderr become non-blocking and registered with the loop
//! ([`ChildStdin`] implements `Write`, [`ChildStdout`] and [`ChildStderr`]
//! implement `Read`, so `BufReader::lines` works). [`Child::wait`] parks the
//! fiber until the process exits, watching a pidfd where the kernel has them
//! (Linux 5.3+) and polling with a short back-off elsewhere.
//!
//! ```
//! use std::io::{BufRead, BufReader};
//! use std::process::{Command, Stdio};
//!
//! fiberloop::run(|| -> std::io::Result<()> {
//!     let mut child = fiberloop::process::spawn(
//!         Command::new("printf").arg("one\ntwo\n").stdout(Stdio::piped()),
//!     )?;
//!     let stdout = child.stdout.take().unwrap();
//!     let lines: Vec<String> = BufReader::new(stdout).lines().collect::<Result<_, _>>()?;
//!     assert_eq!(lines, ["one", "two"]);
//!     assert!(child.wait()?.success());
//!     Ok(())
//! })
//! .unwrap();
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::{Command, ExitStatus};
use std::task::Poll;
use std::time::Duration;

use crate::rt::reactor::Source;
use crate::sys::Interest;

/// Starts `command`. Its piped standard streams (see
/// [`Command::stdout`](std::process::Command::stdout) and friends) come back
/// as loop-driven pipes in the [`Child`].
///
/// # Errors
/// What [`Command::spawn`] reports (`NotFound` for a missing program).
pub fn spawn(command: &mut Command) -> io::Result<Child> {
    let mut child = command.spawn()?;
    let stdin = child.stdin.take().map(ChildStdin::new).transpose()?;
    let stdout = child.stdout.take().map(ChildStdout::new).transpose()?;
    let stderr = child.stderr.take().map(ChildStderr::new).transpose()?;
    let exit = crate::sys::pidfd_open(child.id()).ok().map(Source::new);
    Ok(Child {
        stdin,
        stdout,
        stderr,
        child,
        exit,
    })
}

/// A running (or exited) child process.
///
/// Dropping it neither kills nor waits for the process, as with std; call
/// [`kill`](Self::kill) and [`wait`](Self::wait) to reap it.
pub struct Child {
    /// The child's stdin, if it was piped. Drop it to send end of file.
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if it was piped.
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if it was piped.
    pub stderr: Option<ChildStderr>,
    child: std::process::Child,
    /// Readable once the process exits (a pidfd), where supported.
    exit: Option<Source<OwnedFd>>,
}

/// How long the fallback (no pidfd) waits between checks, at most.
const MAX_POLL: Duration = Duration::from_millis(50);

impl Child {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `SIGKILL`. Killing a process that has exited already is not an
    /// error (as std since 1.76, whose wording this keeps).
    pub fn kill(&mut self) -> io::Result<()> {
        self.child.kill()
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits for the process to exit, parking only the calling fiber (a plain
    /// thread blocks). Closes the child's stdin first, so a child reading it
    /// does not wait forever, as std does.
    ///
    /// # Errors
    /// [`Cancelled`](crate::Cancelled) if called while the fiber is unwinding, `TimedOut`
    /// in an expired [`timeout`](crate::timeout) scope (the process keeps
    /// running; wait again or kill it).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        let child = &mut self.child;
        if let Some(exit) = &self.exit {
            let on = crate::rt::diag::WaitOn::Child;
            return exit.do_io_on(on, Interest::Read, |_| exited(child));
        }
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            pause_for(pause)?;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// The async face of [`wait`](Self::wait).
    pub async fn wait_async(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        let child = &mut self.child;
        if let Some(exit) = &self.exit {
            return exit.io_async(Interest::Read, |_| exited(child)).await;
        }
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            crate::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }
}

/// Sleeps between checks of the no-pidfd fallback. A cancellation or an
/// expired timeout scope ends the wait with its error.
fn pause_for(pause: Duration) -> io::Result<()> {
    let until = crate::rt::sim::now() + pause;
    let on = crate::rt::wait::WaitOn::Child;
    match crate::rt::wait::block_on(Some(until), on, |_| Poll::<()>::Pending) {
        Err(crate::WaitError::TimedOut) if crate::rt::sim::now() >= until => Ok(()),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(()),
    }
}

/// The exit status, or `WouldBlock` while the process runs.
fn exited(child: &mut std::process::Child) -> io::Result<ExitStatus> {
    child
        .try_wait()?
        .ok_or_else(|| io::ErrorKind::WouldBlock.into())
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.child.id())
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .finish()
    }
}

/// Defines a loop-driven pipe end wrapping mio's pipe type `$mio`, made from
/// std's child pipe `$std`.
macro_rules! pipe_end {
    ($(#[$doc:meta])* $name:ident, $mio:ty, $std:ty) => {
        $(#[$doc])*
        pub struct $name {
            source: Source<$mio>,
        }

        impl $name {
            fn new(pipe: $std) -> io::Result<$name> {
                let pipe = <$mio>::from(pipe);
                pipe.set_nonblocking(true)?;
                Ok($name {
                    source: Source::new(pipe),
                })
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.source.get_ref().as_raw_fd()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("fd", &self.as_raw_fd())
                    .finish()
            }
        }
    };
}

pipe_end!(
    /// The write end of a child's stdin; writes park the fiber while the pipe
    /// is full. Writing after the child exited fails with `BrokenPipe`.
    ChildStdin,
    mio::unix::pipe::Sender,
    std::process::ChildStdin
);
pipe_end!(
    /// The read end of a child's stdout; reads park the fiber until output
    /// arrives, and return 0 at end of file (the child closed it or exited).
    ChildStdout,
    mio::unix::pipe::Receiver,
    std::process::ChildStdout
);
pipe_end!(
    /// The read end of a child's stderr, like [`ChildStdout`].
    ChildStderr,
    mio::unix::pipe::Receiver,
    std::process::ChildStderr
);

impl Write for ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.source.do_io(Interest::Write, None, |p| {
            crate::sys::write_pipe(p.as_raw_fd(), buf)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // nothing is buffered in user space
    }
}

impl Read for ChildStdout {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.source.do_io(Interest::Read, None, |mut p| p.read(buf))
    }
}

impl Read for ChildStderr {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.source.do_io(Interest::Read, None, |mut p| p.read(buf))
    }
}
