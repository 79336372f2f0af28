//! libc's own definitions of the hooked functions, found once with
//! `dlsym(RTLD_NEXT, ..)` by a constructor that runs before `main` (and
//! before any signal handler could need one), kept in one atomic slot each.

use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, Ordering};

use libc::{
    addrinfo, c_char, c_int, c_ulong, clockid_t, iovec, msghdr, nfds_t, pollfd, size_t, sockaddr,
    socklen_t, ssize_t, timespec,
};

/// One slot and one typed getter per function; `resolve_all` fills every slot.
macro_rules! real {
    ($($name:ident: $ty:ty;)*) => {
        #[allow(non_upper_case_globals)]
        mod slot {
            use super::*;
            $(pub(super) static $name: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());)*
        }
        $(
            /// libc's definition of this function.
            #[inline(always)]
            pub(super) fn $name() -> $ty {
                let mut f = slot::$name.load(Ordering::Relaxed);
                if f.is_null() {
                    // Only a call made before our constructor ran (from
                    // another constructor) gets here.
                    f = resolve(concat!(stringify!($name), "\0"), &slot::$name);
                }
                // SAFETY: `f` is what `dlsym` returned for the libc symbol of
                // this name, never null (`resolve` aborts instead), and `$ty`
                // is that function's C signature as glibc declares it (for the
                // variadic `fcntl` and `ioctl`, a C-variadic pointer type, so
                // calls through it use the variadic calling convention).
                unsafe { std::mem::transmute::<*mut c_void, $ty>(f) }
            }
        )*

        /// The same functions without the lookup fallback: `None` before the
        /// constructor ran. For the hot paths, which then fall back to their
        /// out-of-line rest (so that they need no stack frame of their own).
        #[allow(dead_code)] // only the hot calls use it
        pub(super) mod loaded {
            use super::*;
            $(
                /// libc's definition of this function, if looked up already.
                #[inline(always)]
                pub(in crate::hook) fn $name() -> Option<$ty> {
                    let f = super::slot::$name.load(Ordering::Relaxed);
                    // SAFETY: as in the getter of the same name: a non-null
                    // slot holds libc's function of this C signature.
                    (!f.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, $ty>(f) })
                }
            )*
        }

        /// Looks every function up; called once, before `main`.
        pub(super) fn resolve_all() {
            $(resolve(concat!(stringify!($name), "\0"), &slot::$name);)*
        }
    };
}

real! {
    socket: unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
    socketpair: unsafe extern "C" fn(c_int, c_int, c_int, *mut c_int) -> c_int;
    pipe2: unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
    accept4: unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int;
    connect: unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;
    read: unsafe extern "C" fn(c_int, *mut c_void, size_t) -> ssize_t;
    readv: unsafe extern "C" fn(c_int, *const iovec, c_int) -> ssize_t;
    recv: unsafe extern "C" fn(c_int, *mut c_void, size_t, c_int) -> ssize_t;
    recvfrom: unsafe extern "C" fn(c_int, *mut c_void, size_t, c_int, *mut sockaddr, *mut socklen_t) -> ssize_t;
    recvmsg: unsafe extern "C" fn(c_int, *mut msghdr, c_int) -> ssize_t;
    write: unsafe extern "C" fn(c_int, *const c_void, size_t) -> ssize_t;
    writev: unsafe extern "C" fn(c_int, *const iovec, c_int) -> ssize_t;
    send: unsafe extern "C" fn(c_int, *const c_void, size_t, c_int) -> ssize_t;
    sendto: unsafe extern "C" fn(c_int, *const c_void, size_t, c_int, *const sockaddr, socklen_t) -> ssize_t;
    sendmsg: unsafe extern "C" fn(c_int, *const msghdr, c_int) -> ssize_t;
    poll: unsafe extern "C" fn(*mut pollfd, nfds_t, c_int) -> c_int;
    nanosleep: unsafe extern "C" fn(*const timespec, *mut timespec) -> c_int;
    clock_nanosleep: unsafe extern "C" fn(clockid_t, c_int, *const timespec, *mut timespec) -> c_int;
    close: unsafe extern "C" fn(c_int) -> c_int;
    dup: unsafe extern "C" fn(c_int) -> c_int;
    dup2: unsafe extern "C" fn(c_int, c_int) -> c_int;
    dup3: unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
    fcntl: unsafe extern "C" fn(c_int, c_int, ...) -> c_int;
    ioctl: unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int;
    setsockopt: unsafe extern "C" fn(c_int, c_int, c_int, *const c_void, socklen_t) -> c_int;
    getaddrinfo: unsafe extern "C" fn(*const c_char, *const c_char, *const addrinfo, *mut *mut addrinfo) -> c_int;
}

/// Finds libc's `name` (NUL-terminated) and stores it in `slot`.
#[cold]
fn resolve(name: &'static str, slot: &AtomicPtr<c_void>) -> *mut c_void {
    // SAFETY: `name` ends in NUL (every caller builds it with `concat!`), and
    // `dlsym` only reads it.
    let f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) };
    if f.is_null() {
        die(name);
    }
    slot.store(f, Ordering::Relaxed);
    f
}

/// No libc behind us (a static build slipped past the compile-time check):
/// nothing can be forwarded, so say which symbol and stop.
fn die(name: &str) -> ! {
    let message = format!(
        "fiberloop (hook feature): dlsym(RTLD_NEXT, \"{}\") found nothing; the hook feature \
         needs a dynamically linked glibc\n",
        name.trim_end_matches('\0')
    );
    // SAFETY: writes `message`'s bytes to stderr with the raw system call (no
    // hook involved), then aborts.
    unsafe {
        libc::syscall(libc::SYS_write, 2, message.as_ptr(), message.len());
        libc::abort()
    }
}
