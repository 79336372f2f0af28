//! The hooked calls that end, copy or change a descriptor: `close`, the
//! `dup`s, `fcntl`, `ioctl(FIONBIO)` and the socket timeouts.
use std::ffi::c_void;
use std::sync::atomic::Ordering;
use std::time::Duration;

use libc::{c_int, c_ulong, socklen_t};

use super::fds;
use super::park::IN_CHILD;
use super::real;
use crate::sys::Interest;

// ---- the descriptor's life and mode ----------------------------------------

/// # Safety
/// As libc's `close(2)`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if !IN_CHILD.load(Ordering::Relaxed) {
        fds::forget(fd); // wakes its waiters, deregisters it while still open
    }
    // SAFETY: the caller's argument, forwarded.
    unsafe { real::close()(fd) }
}

/// # Safety
/// As libc's `dup(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: the caller's argument, forwarded.
    let new = unsafe { real::dup()(fd) };
    if new >= 0 {
        fds::copy(fd, new);
    }
    new
}

/// # Safety
/// As libc's `dup2(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: the caller's arguments, forwarded.
    replace(old, new, || unsafe { real::dup2()(old, new) })
}

/// # Safety
/// As libc's `dup3(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: the caller's arguments, forwarded.
    replace(old, new, || unsafe { real::dup3()(old, new, flags) })
}

/// `dup2`/`dup3`: `new` is closed (its waiters wake) and becomes a copy of `old`.
fn replace(old: c_int, new: c_int, op: impl FnOnce() -> c_int) -> c_int {
    let in_child = IN_CHILD.load(Ordering::Relaxed);
    if old != new && !in_child {
        fds::forget(new);
    }
    let result = op();
    if result >= 0 && old != new && !in_child {
        fds::copy(old, result);
    }
    result
}

/// `fcntl`, C-variadic in libc. Stable Rust cannot define a variadic
/// function, so this one takes its optional third argument as a fixed
/// `unsigned long`: on the x86_64 and aarch64 Linux ABIs, the only targets
/// of this module, a variadic integer or pointer argument travels in the
/// same register as a fixed one, so every `fcntl` command's argument (an
/// int, a pointer, or none) arrives intact, and is forwarded through a
/// variadic pointer to libc's definition.
///
/// # Safety
/// As libc's `fcntl(2)`.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    match cmd {
        libc::F_GETFL => {
            // SAFETY: F_GETFL takes no argument.
            let flags = unsafe { real::fcntl()(fd, cmd) };
            if flags >= 0 && fds::hides_nonblock(fd) {
                return flags & !libc::O_NONBLOCK; // what the user set
            }
            flags
        }
        libc::F_SETFL => {
            let mut arg = arg;
            if let Some(entry) = fds::get(fd).filter(|entry| entry.tracked()) {
                entry.set_user_nonblock(arg & libc::O_NONBLOCK as c_ulong != 0);
                if entry.sys_nonblock() {
                    arg |= libc::O_NONBLOCK as c_ulong; // keep the fibers parking
                }
            }
            // SAFETY: F_SETFL takes an int; the caller's flags (plus ours).
            unsafe { real::fcntl()(fd, cmd, arg as c_int) }
        }
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            // SAFETY: these take an int: the lowest number to use.
            let new = unsafe { real::fcntl()(fd, cmd, arg as c_int) };
            if new >= 0 {
                fds::copy(fd, new);
            }
            new
        }
        // SAFETY: the caller's arguments, forwarded as they came (see above).
        _ => unsafe { real::fcntl()(fd, cmd, arg) },
    }
}

/// `ioctl`, C-variadic in libc: the third argument is taken as a fixed
/// `unsigned long`, as for [`fcntl`] (the same ABI reasoning). Only
/// `FIONBIO` is looked at.
///
/// # Safety
/// As libc's `ioctl(2)`.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: c_ulong) -> c_int {
    if request == libc::FIONBIO as c_ulong && arg != 0 {
        if let Some(entry) = fds::get(fd).filter(|entry| entry.tracked()) {
            // SAFETY: FIONBIO's argument points at an int (the caller's).
            let on = unsafe { *(arg as *const c_int) } != 0;
            entry.set_user_nonblock(on);
            if !on && entry.sys_nonblock() {
                return 0; // blocking for the user; non-blocking underneath
            }
        }
    }
    // SAFETY: the caller's arguments, forwarded as they came.
    unsafe { real::ioctl()(fd, request, arg) }
}

/// # Safety
/// As libc's `setsockopt(2)`.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: the caller's arguments, forwarded.
    let result = unsafe { real::setsockopt()(fd, level, name, value, len) };
    let interest = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => Interest::Read,
        (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => Interest::Write,
        _ => return result,
    };
    if result == 0 && len as usize >= std::mem::size_of::<libc::timeval>() {
        // SAFETY: the kernel accepted `value` as a timeval of `len` bytes.
        let tv = unsafe { value.cast::<libc::timeval>().read_unaligned() };
        let timeout = Duration::new(tv.tv_sec.max(0) as u64, 0)
            + Duration::from_micros(tv.tv_usec.max(0) as u64);
        if let Some(entry) = fds::get(fd) {
            entry.set_timeout(interest, timeout);
        }
    }
    result
}
