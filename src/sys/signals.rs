//! Unix signals as bytes in a pipe (the self-pipe trick): the handler only
//! `write`s the signal number into the pipes of the listeners that asked for
//! it, which is async-signal-safe; the loop reads the pipes like any socket.
//!
//! Listener slots live in a fixed static table. A slot's pipe is created once
//! and never closed: a handler that read a slot's descriptor just before the
//! slot was released must not write into a descriptor number that has since
//! been reused for something else. A released slot (and its pipe) is reused
//! by the next listener, after draining what is left in it.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;

use super::syscall;

/// Listeners that may exist at once, process-wide.
pub(crate) const MAX_LISTENERS: usize = 64;

struct Slot {
    /// Signals (bit `n` for signal `n`) this slot's listener wants; 0 if free.
    mask: AtomicU64,
    /// Write end of the slot's pipe, -1 until first used.
    write_fd: AtomicI32,
    /// Read end of the slot's pipe, -1 until first used.
    read_fd: AtomicI32,
    taken: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // only used to build the array
const FREE: Slot = Slot {
    mask: AtomicU64::new(0),
    write_fd: AtomicI32::new(-1),
    read_fd: AtomicI32::new(-1),
    taken: AtomicBool::new(false),
};
static SLOTS: [Slot; MAX_LISTENERS] = [FREE; MAX_LISTENERS];

/// Signals whose handler is installed (bit `n` for signal `n`).
static INSTALLED: Mutex<u64> = Mutex::new(0);

extern "C" fn on_signal(signo: libc::c_int) {
    // SAFETY: `__errno_location` returns this thread's errno; the handler
    // restores it so the interrupted code sees its own.
    let errno = unsafe { *libc::__errno_location() };
    let bit = 1u64 << signo;
    for slot in &SLOTS {
        if slot.mask.load(Ordering::Acquire) & bit != 0 {
            let fd = slot.write_fd.load(Ordering::Acquire);
            let byte = signo as u8;
            // SAFETY: `fd` is a pipe this module created and never closes;
            // the raw `write` system call is async-signal-safe (and no libc
            // hook of the `hook` feature sits in its way). A full pipe drops
            // the byte (the listener has unread deliveries of this kind anyway).
            #[cfg(target_os = "linux")]
            unsafe {
                libc::syscall(
                    libc::SYS_write,
                    fd,
                    (&raw const byte).cast::<libc::c_void>(),
                    1usize,
                )
            };
            // SAFETY: as above, through libc (no hooks exist off Linux).
            #[cfg(not(target_os = "linux"))]
            unsafe {
                libc::write(fd, (&raw const byte).cast(), 1)
            };
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Signals a listener may not take: uncatchable ones, and the synchronous
/// faults (a handler for those must not return; fiberloop's own SIGSEGV/SIGBUS
/// handler reports stack overflows).
pub(crate) fn forbidden(signo: i32) -> bool {
    !(1..64).contains(&signo)
        || [
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
        ]
        .contains(&signo)
}

/// Installs the handler for every signal in `mask` not handled yet. The
/// handler stays for the life of the process (as asyncio's and tokio's do).
fn install(mask: u64) -> io::Result<()> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    for signo in 1..64 {
        let bit = 1u64 << signo;
        if mask & bit == 0 || *installed & bit != 0 {
            continue;
        }
        // SAFETY: a zeroed sigaction is valid; we fill the handler and flags,
        // and `sigaction` copies it before returning.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            syscall!(sigaction(signo, &action, std::ptr::null_mut()))?;
        }
        *installed |= bit;
    }
    Ok(())
}

/// A listener's claim on a slot: its pipe's read end, and the slot released
/// on drop.
pub(crate) struct Listener {
    slot: &'static Slot,
}

impl Listener {
    /// Claims a slot for the signals in `mask` and installs their handlers.
    pub(crate) fn new(mask: u64) -> io::Result<Listener> {
        let slot = SLOTS
            .iter()
            .find(|s| {
                s.taken
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!("more than {MAX_LISTENERS} signal listeners at once"),
                )
            })?;
        let listener = Listener { slot };
        if slot.read_fd.load(Ordering::Acquire) < 0 {
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two descriptors pipe2 writes.
            unsafe { syscall!(pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC)) }?;
            slot.read_fd.store(fds[0], Ordering::Release);
            slot.write_fd.store(fds[1], Ordering::Release);
        }
        // Whatever a previous listener left unread is not ours.
        while listener.read_byte()?.is_some() {}
        install(mask)?;
        slot.mask.store(mask, Ordering::Release);
        Ok(listener)
    }

    /// The read end of the listener's pipe (owned by the slot; never closed).
    pub(crate) fn fd(&self) -> RawFd {
        self.slot.read_fd.load(Ordering::Acquire)
    }

    /// One delivered signal number, or `None` if none is pending.
    pub(crate) fn read_byte(&self) -> io::Result<Option<i32>> {
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into `byte`, from our pipe.
        match unsafe { syscall!(read(self.fd(), (&mut byte as *mut u8).cast(), 1)) } {
            Ok(1) => Ok(Some(i32::from(byte))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.slot.mask.store(0, Ordering::Release);
        self.slot.taken.store(false, Ordering::Release);
    }
}
