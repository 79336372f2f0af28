//! The path every interposed libc function shares. Each one first asks "is a fiber running
//! on this thread?" (one thread-local load); if not, it calls libc's own
//! function and returns what it returned. In a fiber, a call that would block
//! on a descriptor the process made through a hooked call parks only the
//! fiber, through the reactor's one waiting mechanism, and retries when the
//! descriptor is ready. Nothing unwinds out of these functions: a
//! cancellation that reaches a parked call is caught and becomes `ECANCELED`
//! (the loop unwinds the fiber again at its next park).

use std::any::Any;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use libc::{c_int, EAGAIN};

use super::fds::{self, Fd};
use super::real;
use crate::rt::coro::ForcedUnwind;
pub(super) use crate::sys::fiber_flag::get as in_fiber;
use crate::sys::{self, Interest};

/// Set in the child of a `fork`: the fd table's locks may have been held by
/// a thread that the child does not have, so closes no longer touch it.
pub(super) static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// Runs before `main`: resolves every libc function and installs the
/// `fork` handler.
extern "C" fn init() {
    real::resolve_all();
    // SAFETY: registers a plain function that only stores to a thread-local
    // and an atomic (async-signal-safe, as a child handler must be).
    unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
}

// SAFETY: `.init_array` entries are called once by the dynamic loader (or the
// C runtime) before `main`, with no arguments, on the main thread; `init`
// has exactly that signature and is sound to run then.
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

/// The child of a `fork` made from a fiber has no loop: make its one thread
/// count as outside any fiber, so that every hook passes straight through.
extern "C" fn after_fork_in_child() {
    crate::rt::coro::forget_fiber_after_fork();
    IN_CHILD.store(true, Ordering::Relaxed);
}

#[inline(always)]
pub(super) fn errno() -> c_int {
    // SAFETY: `__errno_location` returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

#[inline(always)]
pub(super) fn set_errno(value: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value };
}

/// The C convention for a Rust error: `-1`, with errno set.
pub(super) fn fail(e: &io::Error, own_timeout: bool) -> isize {
    set_errno(errno_of(e, own_timeout));
    -1
}

/// The errno for an error of the waiting machinery: the OS error as is; a
/// timeout as the kernel reports it (`EAGAIN` for the socket's own
/// `SO_RCVTIMEO`/`SO_SNDTIMEO`, which std reads as `WouldBlock`, else
/// `ETIMEDOUT`, for a `fiberloop::timeout` scope); a cancellation as
/// `ECANCELED`.
pub(super) fn errno_of(e: &io::Error, own_timeout: bool) -> c_int {
    if let Some(code) = e.raw_os_error() {
        return code;
    }
    match e.kind() {
        io::ErrorKind::TimedOut if own_timeout => EAGAIN,
        io::ErrorKind::TimedOut => libc::ETIMEDOUT,
        _ if e
            .get_ref()
            .is_some_and(|inner| inner.is::<crate::Cancelled>()) =>
        {
            libc::ECANCELED
        }
        _ => libc::EIO,
    }
}

/// A panic stopped at the C boundary (unwinding through it would abort):
/// the loop's cancellation (`ForcedUnwind`) silently, anything else with a
/// message. Either way the call fails with `ECANCELED`.
#[cold]
pub(super) fn caught(payload: Box<dyn Any + Send>) -> c_int {
    if !payload.is::<ForcedUnwind>() {
        let message =
            crate::rt::task::payload_message(payload.as_ref()).unwrap_or("(not a string)");
        eprintln!(
            "fiberloop (hook): a panic inside a hooked libc call was stopped there: {message}"
        );
    }
    libc::ECANCELED
}

/// A syscall's `-1` as the error it set.
#[inline(always)]
pub(super) fn cvt(result: isize) -> io::Result<isize> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// One blocking call on `fd` for `interest`; `op` makes the real call.
/// `dontwait`: the call's own flags asked for non-blocking (`MSG_DONTWAIT`).
///
/// Outside a fiber this is a thread-local test and a bit test, then libc's
/// function as a tail call; everything else is out of line (callgrind
/// figures in docs/hook.md).
#[inline(always)]
pub(super) fn blocking(
    fd: c_int,
    interest: Interest,
    dontwait: bool,
    mut op: impl FnMut() -> isize,
) -> isize {
    if in_fiber() {
        return in_fiber_call(fd, interest, dontwait, op);
    }
    if fds::hides_nonblock(fd) && !dontwait {
        return outside_blocking(fd, interest, op);
    }
    op()
}

/// Outside a fiber, on a descriptor the hooks made non-blocking (a fiber
/// used it before) although its user did not ask for that: block the thread
/// as the kernel would have, honouring the socket's timeout.
#[cold]
#[inline(never)]
pub(super) fn outside_blocking(
    fd: c_int,
    interest: Interest,
    mut op: impl FnMut() -> isize,
) -> isize {
    let deadline = fds::get(fd)
        .and_then(|entry| entry.timeout(interest))
        .map(crate::rt::lock::deadline_after);
    loop {
        let result = op();
        if result != -1 || errno() != EAGAIN {
            return result;
        }
        match sys::wait_fd(fd, interest, deadline) {
            Ok(true) => {}
            Ok(false) => {
                set_errno(EAGAIN);
                return -1;
            }
            Err(e) => return fail(&e, true),
        }
    }
}

/// In a fiber: try the call; on `EAGAIN` park the fiber until the descriptor
/// is ready, then try again.
#[inline(never)]
fn in_fiber_call(
    fd: c_int,
    interest: Interest,
    dontwait: bool,
    mut op: impl FnMut() -> isize,
) -> isize {
    let Some(entry) = fds::get(fd).filter(|entry| entry.parks() && !dontwait) else {
        return op();
    };
    if let Err(e) = entry.make_nonblocking(fd) {
        return fail(&e, false);
    }
    let generation = entry.generation();
    let tick = entry.source.tick(interest);
    let result = op();
    if result != -1 || errno() != EAGAIN {
        return result;
    }
    park(entry, interest, generation, tick, op)
}

/// The fiber parks until `entry` is ready for `interest` and `op` succeeds,
/// the socket's timeout passes, or the descriptor is closed (`EBADF`).
pub(super) fn park(
    entry: &'static Fd,
    interest: Interest,
    generation: u32,
    tick: usize,
    mut op: impl FnMut() -> isize,
) -> isize {
    let timeout = entry.timeout(interest);
    let waited = panic::catch_unwind(AssertUnwindSafe(|| {
        entry.source.wait_io(interest, timeout, tick, None, |_| {
            if entry.generation() != generation {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            cvt(op())
        })
    }));
    match waited {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => fail(&e, timeout.is_some()),
        Err(payload) => {
            set_errno(caught(payload));
            -1
        }
    }
}
