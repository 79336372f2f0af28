//! The hooked calls that make descriptors (so that they are tracked), and
//! the reads and writes that park a fiber on them.
use std::ffi::c_void;

use libc::{
    c_int, iovec, msghdr, pollfd, size_t, sockaddr, socklen_t, ssize_t, EAGAIN, EINPROGRESS,
};

use super::fds;
use super::park::{blocking, errno, fail, in_fiber, outside_blocking, park, set_errno};
use super::real;
use crate::sys::Interest;

// ---- descriptors made by the process -------------------------------------

/// # Safety
/// As libc's `socket(2)`.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, kind: c_int, protocol: c_int) -> c_int {
    // SAFETY: the caller's arguments, forwarded.
    let fd = unsafe { real::socket()(domain, kind, protocol) };
    if fd >= 0 {
        fds::track(fd, kind & libc::SOCK_NONBLOCK != 0);
    }
    fd
}

/// # Safety
/// As libc's `socketpair(2)`: `sv` points at room for two descriptors.
#[no_mangle]
pub unsafe extern "C" fn socketpair(
    domain: c_int,
    kind: c_int,
    protocol: c_int,
    sv: *mut c_int,
) -> c_int {
    // SAFETY: the caller's arguments, forwarded.
    let result = unsafe { real::socketpair()(domain, kind, protocol, sv) };
    if result == 0 {
        // SAFETY: on success the kernel wrote two descriptors at `sv`.
        let pair = unsafe { [*sv, *sv.add(1)] };
        pair.into_iter()
            .for_each(|fd| fds::track(fd, kind & libc::SOCK_NONBLOCK != 0));
    }
    result
}

/// # Safety
/// As libc's `pipe(2)`.
#[no_mangle]
pub unsafe extern "C" fn pipe(fds_out: *mut c_int) -> c_int {
    // SAFETY: the caller's arguments, forwarded (pipe is pipe2 with no flags).
    unsafe { pipe2(fds_out, 0) }
}

/// # Safety
/// As libc's `pipe2(2)`: `fds_out` points at room for two descriptors.
#[no_mangle]
pub unsafe extern "C" fn pipe2(fds_out: *mut c_int, flags: c_int) -> c_int {
    // SAFETY: the caller's arguments, forwarded.
    let result = unsafe { real::pipe2()(fds_out, flags) };
    if result == 0 {
        // SAFETY: on success the kernel wrote two descriptors at `fds_out`.
        let pair = unsafe { [*fds_out, *fds_out.add(1)] };
        pair.into_iter()
            .for_each(|fd| fds::track(fd, flags & libc::O_NONBLOCK != 0));
    }
    result
}

/// # Safety
/// As libc's `accept(2)`.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: the caller's arguments, forwarded.
    unsafe { accept4(fd, addr, len, 0) }
}

/// # Safety
/// As libc's `accept4(2)`.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's arguments, forwarded; each retry passes them again.
    let accepted = blocking(fd, Interest::Read, false, move || unsafe {
        real::accept4()(fd, addr, len, flags) as isize
    }) as c_int;
    if accepted >= 0 {
        fds::track(accepted, flags & libc::SOCK_NONBLOCK != 0);
    }
    accepted
}

/// # Safety
/// As libc's `connect(2)`.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // In a fiber, on a descriptor that parks: make it non-blocking and read
    // the tick before the first try, as every parking call does.
    let mut fiber_wait = None;
    if let Some(entry) = fds::get(fd).filter(|entry| entry.parks() && in_fiber()) {
        if let Err(e) = entry.make_nonblocking(fd) {
            return fail(&e, false) as c_int;
        }
        fiber_wait = Some((
            entry,
            entry.generation(),
            entry.source.tick(Interest::Write),
        ));
    }
    // SAFETY: the caller's arguments, forwarded.
    let result = unsafe { real::connect()(fd, addr, len) };
    if result == 0 || errno() != EINPROGRESS {
        return result;
    }
    // In progress. Unless the user asked for a non-blocking connect, wait for
    // it as the kernel's blocking connect would: the fiber parks, a plain
    // thread polls. `connected` says EAGAIN while it is in progress, so
    // EAGAIN at the end means SO_SNDTIMEO passed: ETIMEDOUT.
    let waited = match fiber_wait {
        Some((entry, generation, tick)) => {
            park(entry, Interest::Write, generation, tick, || connected(fd))
        }
        None if fds::hides_nonblock(fd) => outside_blocking(fd, Interest::Write, || connected(fd)),
        None => return result,
    } as c_int;
    if waited == -1 && errno() == EAGAIN {
        set_errno(libc::ETIMEDOUT);
    }
    waited
}

/// Whether a non-blocking connect has finished: `0`, `-1` with `EAGAIN`
/// while it is in progress, or `-1` with its error.
fn connected(fd: c_int) -> isize {
    let mut pfd = pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    match unsafe { real::poll()(&mut pfd, 1, 0) } {
        0 => {
            set_errno(EAGAIN);
            -1
        }
        -1 => -1,
        _ => {
            let mut error: c_int = 0;
            let mut len = std::mem::size_of::<c_int>() as socklen_t;
            // SAFETY: SO_ERROR writes one int into `error`, `len` says so.
            let got = unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&raw mut error).cast(),
                    &mut len,
                )
            };
            match (got, error) {
                (-1, _) => -1,
                (_, 0) => 0,
                (_, error) => {
                    set_errno(error);
                    -1
                }
            }
        }
    }
}

// ---- reads and writes ----------------------------------------------------

/// Each read or write call twice: the exported function, which outside a
/// fiber (on a descriptor the hooks did not make non-blocking) is a
/// thread-local test, a bit test and a tail call to libc; and an out-of-line
/// rest, which does the fiber's parking or the thread's waiting.
macro_rules! hooked_io {
    ($(
        $(#[$doc:meta])*
        fn $name:ident / $rest:ident ($fd:ident: c_int $(, $arg:ident: $ty:ty)*),
            $interest:expr, dontwait: $dontwait:expr;
    )*) => {$(
        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C" fn $name($fd: c_int $(, $arg: $ty)*) -> ssize_t {
            if !in_fiber() && !fds::hides_nonblock($fd) {
                if let Some(libc_fn) = real::loaded::$name() {
                    // SAFETY: the caller's arguments, forwarded.
                    return unsafe { libc_fn($fd $(, $arg)*) };
                }
            }
            // SAFETY: the caller's arguments, forwarded.
            unsafe { $rest($fd $(, $arg)*) }
        }

        /// The rest of the hooked call of the same name.
        ///
        /// # Safety
        /// As that call.
        #[cold]
        #[inline(never)]
        unsafe extern "C" fn $rest($fd: c_int $(, $arg: $ty)*) -> ssize_t {
            let dontwait: bool = $dontwait;
            // SAFETY: the caller's arguments, forwarded; each retry passes
            // them again.
            blocking($fd, $interest, dontwait, move || unsafe { real::$name()($fd $(, $arg)*) })
        }
    )*};
}

hooked_io! {
    /// # Safety
    /// As libc's `read(2)`.
    fn read / read_rest(fd: c_int, buf: *mut c_void, count: size_t), Interest::Read, dontwait: false;
    /// # Safety
    /// As libc's `readv(2)`.
    fn readv / readv_rest(fd: c_int, iov: *const iovec, iovcnt: c_int), Interest::Read, dontwait: false;
    /// # Safety
    /// As libc's `recv(2)`.
    fn recv / recv_rest(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int),
        Interest::Read, dontwait: flags & libc::MSG_DONTWAIT != 0;
    /// # Safety
    /// As libc's `recvfrom(2)`.
    fn recvfrom / recvfrom_rest(
        fd: c_int,
        buf: *mut c_void,
        len: size_t,
        flags: c_int,
        addr: *mut sockaddr,
        addrlen: *mut socklen_t
    ), Interest::Read, dontwait: flags & libc::MSG_DONTWAIT != 0;
    /// # Safety
    /// As libc's `recvmsg(2)`.
    fn recvmsg / recvmsg_rest(fd: c_int, msg: *mut msghdr, flags: c_int),
        Interest::Read, dontwait: flags & libc::MSG_DONTWAIT != 0;
    /// # Safety
    /// As libc's `write(2)`.
    fn write / write_rest(fd: c_int, buf: *const c_void, count: size_t), Interest::Write, dontwait: false;
    /// # Safety
    /// As libc's `writev(2)`.
    fn writev / writev_rest(fd: c_int, iov: *const iovec, iovcnt: c_int), Interest::Write, dontwait: false;
    /// # Safety
    /// As libc's `send(2)`.
    fn send / send_rest(fd: c_int, buf: *const c_void, len: size_t, flags: c_int),
        Interest::Write, dontwait: flags & libc::MSG_DONTWAIT != 0;
    /// # Safety
    /// As libc's `sendto(2)`.
    fn sendto / sendto_rest(
        fd: c_int,
        buf: *const c_void,
        len: size_t,
        flags: c_int,
        addr: *const sockaddr,
        addrlen: socklen_t
    ), Interest::Write, dontwait: flags & libc::MSG_DONTWAIT != 0;
    /// # Safety
    /// As libc's `sendmsg(2)`.
    fn sendmsg / sendmsg_rest(fd: c_int, msg: *const msghdr, flags: c_int),
        Interest::Write, dontwait: flags & libc::MSG_DONTWAIT != 0;
}
