//! Platform code: the raw `libc` calls that talk to the kernel.
//!
//! Most of the crate's `unsafe` is here; the rest sits in a few named places
//! of the core (the task cell and its waker, the coroutine's yielder, the
//! installed-loop pointer), each listed in `docs/architecture.md`. A backend
//! here must provide:
//!
//! - [`stack`]: guarded fiber stacks (`mmap` + a `PROT_NONE` guard page), with an
//!   error on failure that names the kernel limit that was hit;
//! - [`fault`]: a `SIGSEGV`/`SIGBUS` handler on an alternate signal stack that
//!   recognises a fault in a fiber's guard page, reports it, and chains to the
//!   previous handler for every other fault;
//! - [`signals`]: Unix signals delivered as bytes into a pipe the loop reads
//!   (the self-pipe trick), for `fiberloop::signal`;
//! - `fiber_flag` (feature `hook`): the one-word "a fiber runs on this
//!   thread" flag that the libc hooks test first;
//! - [`sample`]: the blocking detector's `SIGURG` handler, which records
//!   where an interrupted loop thread is (program counter and the call
//!   sites on its stack) without anything that is not async-signal-safe;
//! - [`wait_fd`]: a blocking wait for readiness of one descriptor, used when the
//!   crate's sockets are driven from a plain thread outside any event loop.
//!
//! Only Unix (Linux first; macOS and the BSDs compile the same code) is supported:
//! fibers need `mmap`, signals and an alternate signal stack.

use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

pub(crate) mod fault;
#[cfg(feature = "hook")]
pub(crate) mod fiber_flag;
pub(crate) mod sample;
pub(crate) mod signals;
pub(crate) mod stack;

/// Turns a libc `-1` return into `io::Error::last_os_error()`.
///
/// This is the one helper that touches control flow; everything in `sys` uses it.
/// It calls `libc::$fn` without an `unsafe` block of its own: each call site
/// writes `unsafe { syscall!(..) }` under a `// SAFETY:` line that says why
/// its arguments are valid.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        let res = libc::$fn($($arg),*);
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// Which readiness a blocking wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    Read,
    Write,
}

/// Blocks the calling OS thread until `fd` is ready for `interest` or `deadline`
/// passes (`Ok(false)`). Retries on `EINTR`.
///
/// Used only outside an event loop, where our sockets behave like std's
/// blocking ones: the socket stays non-blocking and we wait with `poll(2)`.
pub(crate) fn wait_fd(
    fd: RawFd,
    interest: Interest,
    deadline: Option<Instant>,
) -> io::Result<bool> {
    let events = match interest {
        Interest::Read => libc::POLLIN,
        Interest::Write => libc::POLLOUT,
    };
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                // Round up so that a sub-millisecond wait does not become a busy poll.
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid, exclusively borrowed array of one pollfd.
        match unsafe { syscall!(poll(&mut pfd, 1, timeout_ms)) } {
            Ok(0) => continue,        // timed out: the deadline check above decides
            Ok(_) => return Ok(true), // ready, or POLLERR/POLLHUP: the retried call reports it
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A descriptor that becomes readable when process `pid` exits
/// (`pidfd_open(2)`, Linux 5.3+); `Unsupported` where the kernel lacks it.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<std::os::fd::OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::FromRawFd;
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just gave us this descriptor; we own it.
        Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Flags for every write to a socket: never raise `SIGPIPE` on a peer that
/// has gone (std ignores `SIGPIPE` in Rust binaries, but a program that
/// embeds fiberloop may keep the default action, which kills the process).
/// Apple's systems lack `MSG_NOSIGNAL`; there std sets `SO_NOSIGPIPE` on
/// every socket it creates instead.
#[cfg(not(target_vendor = "apple"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(target_vendor = "apple")]
const SEND_FLAGS: libc::c_int = 0;

/// `send(2)` on a connected stream socket, without `SIGPIPE`.
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
    let sent = unsafe { syscall!(send(fd, buf.as_ptr().cast(), buf.len(), SEND_FLAGS)) }?;
    Ok(sent as usize)
}

/// `sendmsg(2)` of several buffers (a vectored write), without `SIGPIPE`.
pub(crate) fn send_vectored(fd: RawFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: a zeroed msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is guaranteed ABI-compatible with `iovec` on Unix; sendmsg
    // only reads through the pointer.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len().min(libc::c_int::MAX as usize) as _;
    // SAFETY: `msg` points at `bufs`, which lives for the whole call.
    let sent = unsafe { syscall!(sendmsg(fd, &msg, SEND_FLAGS)) }?;
    Ok(sent as usize)
}

/// `write(2)` to a pipe without `SIGPIPE` (pipes take no `MSG_NOSIGNAL`):
/// the signal is blocked in this thread around the write and, if the write
/// raised it (`EPIPE`), taken off the pending set before it is unblocked, as
/// curl and OpenSSL do.
pub(crate) fn write_pipe(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    let mut pipe_only: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both point at sigset_t values we own.
    unsafe {
        libc::sigemptyset(&mut pipe_only);
        libc::sigaddset(&mut pipe_only, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_only, &mut old);
    }
    // Was one pending already (not ours to take)?
    // SAFETY: a sigset_t we own.
    let pending_before = unsafe {
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        libc::sigismember(&pending, libc::SIGPIPE) == 1
    };
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
    let written = unsafe { syscall!(write(fd, buf.as_ptr().cast(), buf.len())) };
    if matches!(&written, Err(e) if e.raw_os_error() == Some(libc::EPIPE)) && !pending_before {
        #[cfg(target_os = "linux")]
        {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: valid pointers; a zero timeout only takes what is pending.
            unsafe { libc::sigtimedwait(&pipe_only, std::ptr::null_mut(), &zero) };
        }
    }
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    Ok(written? as usize)
}

/// The CPUs the calling thread may run on (its affinity mask), in order.
#[cfg(target_os = "linux")]
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: `cpu_set_t` is plain bits, valid when zeroed.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live `cpu_set_t` and we pass its exact size; pid 0
    // is the calling thread.
    unsafe { syscall!(sched_getaffinity(0, std::mem::size_of_val(&set), &mut set)) }?;
    let max = 8 * std::mem::size_of_val(&set);
    // SAFETY: `CPU_ISSET` reads bit `cpu` of `set`, in range below `max`.
    Ok((0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pins the calling thread to `cpu`.
#[cfg(target_os = "linux")]
pub(crate) fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= 8 * std::mem::size_of_val(&set) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is beyond what a cpu_set_t holds"),
        ));
    }
    // SAFETY: `cpu` is in range (checked above) and `set` is live.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a live `cpu_set_t` of the size we pass; pid 0 is the
    // calling thread.
    unsafe { syscall!(sched_setaffinity(0, std::mem::size_of_val(&set), &set)) }?;
    Ok(())
}

/// Pinning is supported on Linux only.
#[cfg(not(target_os = "linux"))]
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "pinning loop threads to CPUs is supported on Linux only",
    ))
}

/// Pinning is supported on Linux only.
#[cfg(not(target_os = "linux"))]
pub(crate) fn pin_to_cpu(_cpu: usize) -> io::Result<()> {
    allowed_cpus().map(drop)
}

/// Borrows the descriptor of one of this crate's socket types (only those:
/// see the safety note).
pub(crate) fn borrow_fd<T: std::os::fd::AsRawFd>(socket: &T) -> std::os::fd::BorrowedFd<'_> {
    // SAFETY: each socket type of this crate owns its descriptor from its
    // creation until it is dropped or consumed (`into_std`), so the
    // descriptor stays open for the borrow of `socket`.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(socket.as_raw_fd()) }
}

/// `FromRawFd` for one of this crate's socket types, through the std type
/// `$std` it converts from.
macro_rules! from_raw_fd {
    ($ty:ty, $std:ty) => {
        impl std::os::fd::FromRawFd for $ty {
            /// Takes ownership of an open socket descriptor of this kind and
            /// switches it to non-blocking mode.
            unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> $ty {
                // SAFETY: the caller hands over an open socket of this kind
                // that nothing else owns (this trait's contract), which is
                // what std's `from_raw_fd` requires.
                let socket = unsafe { <$std as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                <$ty>::from(socket)
            }
        }
    };
}
pub(crate) use from_raw_fd;

/// What a descriptor is, in words, for the fiber dump: a socket's kind and
/// addresses (`tcp 127.0.0.1:5000 -> 127.0.0.1:40002`), or `pipe`, `file`,
/// `character device`; `closed` if it is not open.
pub(crate) fn describe_fd(fd: RawFd) -> String {
    if fd < 0 {
        return "invalid".to_string();
    }
    // SAFETY: the descriptor is only looked at (getsockname, getpeername,
    // fstat) for the length of this call; if it was closed meanwhile, those
    // calls fail with EBADF and we say so.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let socket = socket2::SockRef::from(&borrowed);
    let name = |addr: io::Result<socket2::SockAddr>| match addr {
        Ok(addr) => match (addr.as_socket(), addr.as_pathname()) {
            (Some(addr), _) => addr.to_string(),
            (None, Some(path)) => path.display().to_string(),
            (None, None) => "unnamed".to_string(),
        },
        Err(_) => "-".to_string(),
    };
    match socket.local_addr() {
        Ok(local) => {
            let kind = match (socket.r#type(), local.is_unix()) {
                (Ok(socket2::Type::STREAM), false) => "tcp",
                (Ok(socket2::Type::DGRAM), false) => "udp",
                (Ok(socket2::Type::STREAM), true) => "unix stream",
                (Ok(socket2::Type::DGRAM), true) => "unix datagram",
                _ => "socket",
            };
            match socket.peer_addr() {
                Ok(peer) => format!("{kind} {} -> {}", name(Ok(local)), name(Ok(peer))),
                Err(_) => format!("{kind} {}", name(Ok(local))),
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => "closed".to_string(),
        Err(_) => {
            // SAFETY: all-zero is a valid `stat`; fstat writes into it.
            let mut stat: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: `stat` is a live, exclusively borrowed buffer.
            if unsafe { syscall!(fstat(fd, &mut stat)) }.is_err() {
                return "closed".to_string();
            }
            match stat.st_mode & libc::S_IFMT {
                libc::S_IFIFO => "pipe",
                libc::S_IFREG => "file",
                libc::S_IFCHR => "character device",
                _ => "descriptor",
            }
            .to_string()
        }
    }
}
