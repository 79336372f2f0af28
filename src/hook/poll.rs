//! The hooked waits: `poll(2)` on several descriptors, and the sleeps
//! (`nanosleep`, `clock_nanosleep`, which std's `thread::sleep` calls).
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use libc::{c_int, clockid_t, nfds_t, pollfd, timespec};

use super::fds;
use super::park::{caught, errno, fail, in_fiber, set_errno};
use super::real;
use crate::rt::reactor;
use crate::sys::Interest;

// ---- waiting on several descriptors, sleeping ----------------------------

/// # Safety
/// As libc's `poll(2)`: `fds_in` points at `nfds` pollfds.
#[no_mangle]
pub unsafe extern "C" fn poll(fds_in: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    if timeout == 0 || !in_fiber() {
        // SAFETY: the caller's arguments, forwarded.
        return unsafe { real::poll()(fds_in, nfds, timeout) };
    }
    // SAFETY: as above, without waiting.
    let ready = unsafe { real::poll()(fds_in, nfds, 0) };
    if ready != 0 {
        return ready;
    }
    let deadline = u64::try_from(timeout)
        .ok()
        .map(|ms| crate::rt::lock::deadline_after(Duration::from_millis(ms)));
    let pollfds = if nfds == 0 {
        &[][..]
    } else {
        // SAFETY: the caller passes `nfds` valid pollfds at `fds_in`; we
        // only read `fd` and `events` (the real poll writes `revents`).
        unsafe { std::slice::from_raw_parts(fds_in.cast_const(), nfds as usize) }
    };
    let mut sources = Vec::with_capacity(pollfds.len());
    for pfd in pollfds.iter().filter(|pfd| pfd.fd >= 0) {
        let Some(entry) = fds::get_or_alloc(pfd.fd) else {
            // SAFETY: the caller's arguments, forwarded.
            return unsafe { real::poll()(fds_in, nfds, timeout) };
        };
        let write = pfd.events & libc::POLLOUT != 0;
        if !write || pfd.events & (libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP) != 0 {
            sources.push((&entry.source, Interest::Read));
        }
        if write {
            sources.push((&entry.source, Interest::Write));
        }
    }
    let check = || {
        // SAFETY: the caller's arguments, without waiting.
        match unsafe { real::poll()(fds_in, nfds, 0) } {
            0 => Ok(None),
            -1 if errno() == libc::EINTR => Ok(None),
            -1 => Err(io::Error::last_os_error()),
            ready => Ok(Some(ready)),
        }
    };
    let waited = panic::catch_unwind(AssertUnwindSafe(|| {
        reactor::wait_any(&sources, deadline, check)
    }));
    match waited {
        Ok(Ok(Ok(ready))) => ready,
        Ok(Ok(Err(e))) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EEXIST)) => {
            // A descriptor this loop's epoll cannot watch: a regular file
            // (always ready), or one already registered there by its own
            // `Source` (a `fiberloop::net` socket). Wait as libc would.
            let left = deadline.map_or(-1, |d| {
                d.saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(i32::MAX as u128) as c_int
            });
            // SAFETY: the caller's arguments, forwarded.
            unsafe { real::poll()(fds_in, nfds, left) }
        }
        Ok(Ok(Err(e))) => fail(&e, false) as c_int,
        Ok(Err(crate::WaitError::TimedOut)) => 0,
        Ok(Err(crate::WaitError::Cancelled)) => {
            set_errno(libc::ECANCELED);
            -1
        }
        Err(payload) => {
            set_errno(caught(payload));
            -1
        }
    }
}

/// The monotonic instant at which a sleep of `req` on `clock` ends, if the
/// hooks can sleep for it (the clock is a wall or monotonic one and `req` is
/// valid; otherwise libc's own function answers, with its own errors).
fn sleep_deadline(clock: clockid_t, absolute: bool, req: &timespec) -> Option<Instant> {
    if !matches!(
        clock,
        libc::CLOCK_MONOTONIC | libc::CLOCK_REALTIME | libc::CLOCK_BOOTTIME
    ) {
        return None;
    }
    let secs = u64::try_from(req.tv_sec).ok()?;
    let nanos = u32::try_from(req.tv_nsec)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    let mut length = Duration::new(secs, nanos);
    if absolute {
        let mut now = timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec to write.
        if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
            return None;
        }
        let now = Duration::new(
            now.tv_sec.max(0) as u64,
            now.tv_nsec.clamp(0, 999_999_999) as u32,
        );
        length = length.saturating_sub(now);
    }
    // About 136 years: longer sleeps are cut to that.
    Some(crate::rt::lock::deadline_after(
        length.min(Duration::from_secs(1 << 32)),
    ))
}

/// Sleeps the fiber until `deadline`; `false` if it was cancelled meanwhile.
fn fiber_sleep(deadline: Instant) -> bool {
    match panic::catch_unwind(|| crate::fiber::sleep_until(deadline)) {
        Ok(()) => true,
        Err(payload) => {
            caught(payload);
            false
        }
    }
}

/// # Safety
/// As libc's `nanosleep(2)`.
#[no_mangle]
pub unsafe extern "C" fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int {
    // SAFETY: `req` is the caller's valid timespec (or null, left to libc).
    match unsafe { req.as_ref() }
        .filter(|_| in_fiber())
        .and_then(|req| sleep_deadline(libc::CLOCK_MONOTONIC, false, req))
    {
        // SAFETY: the caller's arguments, forwarded.
        None => unsafe { real::nanosleep()(req, rem) },
        Some(deadline) if fiber_sleep(deadline) => 0,
        Some(_) => {
            // Cancelled: an interrupted sleep with nothing left, so that
            // std's retry loop returns.
            // SAFETY: `rem` is null or the caller's timespec to write.
            if let Some(rem) = unsafe { rem.as_mut() } {
                *rem = timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
            }
            set_errno(libc::EINTR);
            -1
        }
    }
}

/// # Safety
/// As libc's `clock_nanosleep(2)` (std's `thread::sleep` on Linux).
#[no_mangle]
pub unsafe extern "C" fn clock_nanosleep(
    clock: clockid_t,
    flags: c_int,
    req: *const timespec,
    rem: *mut timespec,
) -> c_int {
    let absolute = flags & libc::TIMER_ABSTIME != 0;
    // SAFETY: `req` is the caller's valid timespec (or null, left to libc).
    match unsafe { req.as_ref() }
        .filter(|_| in_fiber())
        .and_then(|req| sleep_deadline(clock, absolute, req))
    {
        // SAFETY: the caller's arguments, forwarded.
        None => unsafe { real::clock_nanosleep()(clock, flags, req, rem) },
        Some(deadline) if fiber_sleep(deadline) => 0,
        Some(_) => {
            // SAFETY: `rem` is null or the caller's timespec to write.
            if let Some(rem) = unsafe { rem.as_mut() }.filter(|_| !absolute) {
                *rem = timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
            }
            libc::EINTR // clock_nanosleep returns its error
        }
    }
}
