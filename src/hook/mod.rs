//! The `hook` feature: unmodified blocking code in fibers. libc's blocking
//! calls on sockets and pipes, and its sleeps, park only the calling fiber;
//! the loop runs the others and resumes it when the descriptor is ready or
//! the time has come. This is gevent's `monkey.patch_all()`, done by symbol
//! interposition as the C++ coroutine libraries libgo and libco do it: the
//! final binary's definitions of `recv`, `send`, `connect`, `poll`,
//! `clock_nanosleep`, ... win over libc.so's, so std's own calls (and any C
//! library linked in) reach them, and they reach libc's through
//! `dlsym(RTLD_NEXT, ..)`, looked up once before `main`.
//!
//! The rules, in the order each hooked call applies them:
//!
//! 1. Outside a fiber (a plain thread, the loop's own code, an async task, a
//!    generator's body, a pool thread) the call goes straight to libc.
//! 2. Only descriptors the process made through a hooked call (`socket`,
//!    `socketpair`, `accept`/`accept4`, `pipe`/`pipe2`) ever park a fiber.
//!    Inherited ones (stdio, a pipe from a parent), regular files and ttys
//!    go straight to libc and are never switched to non-blocking.
//! 3. A descriptor the user made non-blocking (`SOCK_NONBLOCK`, `O_NONBLOCK`,
//!    `FIONBIO`, or a call's `MSG_DONTWAIT`) keeps non-blocking semantics:
//!    `EAGAIN`, not a park. fiberloop's and mio's own sockets are made that
//!    way, so their calls pass straight through too.
//! 4. Otherwise the hook sets `O_NONBLOCK` on the descriptor (once, and
//!    hides it from `F_GETFL`), tries the call, and on `EAGAIN` parks the
//!    fiber on the reactor's waiter list for the descriptor, the same one
//!    `fiberloop::net` uses, until it is ready, the socket's
//!    `SO_RCVTIMEO`/`SO_SNDTIMEO` passes (`EAGAIN`, std's `WouldBlock`), an
//!    enclosing [`timeout`](crate::timeout) scope ends (`ETIMEDOUT`), the fiber
//!    is cancelled (`ECANCELED`), or another fiber closes the descriptor
//!    (`EBADF`).
//!
//! The full list of hooked calls, what is not hooked (futex waits such as
//! std's `Mutex` and `mpsc`, `waitpid`, `splice`, `sendfile`, `select`), the
//! costs and the comparison with gevent and libgo are in `docs/hook.md`.
//!
//! Linux with glibc on x86_64 or aarch64 only: other targets, musl and
//! `+crt-static` builds stop with a compile error (`dlsym(RTLD_NEXT)` finds
//! no libc to forward to in a static binary, and musl's symbols clash).
//! Cargo unifies features, so one crate in a build that enables `hook`
//! enables it for the whole binary.
//!
//! All of the feature's `unsafe` is in this module: the interposed functions
//! (`calls`), libc's resolved definitions (`real`) and the descriptor table
//! (`fds`).

#[cfg(not(all(
    target_os = "linux",
    target_env = "gnu",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!(
    "fiberloop's `hook` feature supports Linux with glibc on x86_64 and aarch64 only \
     (it interposes libc symbols and forwards them with dlsym(RTLD_NEXT)); turn the feature off"
);

#[cfg(target_feature = "crt-static")]
compile_error!(
    "fiberloop's `hook` feature cannot work in a static (+crt-static) build: dlsym(RTLD_NEXT) \
     finds no libc to forward the hooked calls to, and libc's own definitions clash with ours"
);

mod fds;
mod io;
mod lookup;
mod modes;
mod park;
mod poll;
mod real;

use std::os::fd::RawFd;

/// True if `fd` parks a fiber that blocks on it: the process made it through
/// a hooked call (`socket`, `accept4`, `pipe2`, ...) and nobody asked for it
/// to be non-blocking. Inherited descriptors, regular files and non-blocking
/// sockets (fiberloop's own among them) give false.
///
/// ```
/// use std::os::fd::AsRawFd;
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// assert!(fiberloop::hook::parks_fibers(listener.as_raw_fd()));
/// listener.set_nonblocking(true).unwrap();
/// assert!(!fiberloop::hook::parks_fibers(listener.as_raw_fd()));
/// assert!(!fiberloop::hook::parks_fibers(0)); // stdin: inherited
/// ```
pub fn parks_fibers(fd: RawFd) -> bool {
    fds::get(fd).is_some_and(fds::Fd::parks)
}
