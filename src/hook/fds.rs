//! What the hooks know about each descriptor number: whether the process made
//! it through a hooked call (only those ever park a fiber), whether the user
//! asked for non-blocking, whether the hooks switched it to non-blocking, its
//! `SO_RCVTIMEO`/`SO_SNDTIMEO`, and its reactor [`Source`] (the same waiter
//! lists and registration that `fiberloop::net` sockets use).
//!
//! A two-level table indexed by the number: 1,024 chunks of 1,024 entries,
//! each chunk allocated when a number in it is first tracked and never freed,
//! so an entry is `&'static` and a lookup is two loads and no lock.
//! Descriptors past 1,048,575 are not tracked (calls on them pass through).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::rt::reactor::Source;
use crate::sys::Interest;

use super::real;

/// Made through a hooked call (`socket`, `accept4`, `pipe2`, ...).
const TRACKED: u32 = 1;
/// The user asked for non-blocking (`SOCK_NONBLOCK`, `O_NONBLOCK`, `FIONBIO`).
const USER_NONBLOCK: u32 = 2;
/// The hooks set `O_NONBLOCK` on it, to park fibers instead of the thread.
const SYS_NONBLOCK: u32 = 4;

const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;
const CHUNKS: usize = 1024;

static TABLE: [AtomicPtr<Fd>; CHUNKS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS];

/// One bit per descriptor number: set while the hooks keep it non-blocking
/// behind a user who did not ask for it (see [`Fd::hides_nonblock`]). The one
/// thing a call outside a fiber must know before it goes to libc, so it gets
/// a flat table of its own: a few instructions and no pointer to follow.
static HIDDEN: [AtomicU64; CHUNKS * CHUNK / 64] =
    [const { AtomicU64::new(0) }; CHUNKS * CHUNK / 64];

/// True if the hooks made `fd` non-blocking behind its user's back: a
/// blocking call outside a fiber must then wait itself.
#[inline(always)]
pub(super) fn hides_nonblock(fd: RawFd) -> bool {
    let index = fd as u32 as usize; // a negative number lands past the end
    HIDDEN
        .get(index / 64)
        .is_some_and(|word| word.load(Ordering::Relaxed) & (1 << (index % 64)) != 0)
}

/// A descriptor number, as the reactor's `Source` wants it (it owns nothing:
/// the user's code closes the descriptor).
pub(super) struct Number(RawFd);

impl AsRawFd for Number {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// One descriptor number's entry.
pub(super) struct Fd {
    flags: AtomicU32,
    /// `SO_RCVTIMEO` and `SO_SNDTIMEO` in nanoseconds, 0 for none.
    timeouts: [AtomicU64; 2],
    /// Bumped whenever the number is closed or reused: a parked call that
    /// wakes to another value fails with `EBADF` instead of touching
    /// whatever file now has the number.
    generation: AtomicU32,
    /// The number's waiters and registration with a loop.
    pub(super) source: Source<Number>,
}

/// The entry of `fd`, if its chunk exists.
#[inline(always)]
pub(super) fn get(fd: RawFd) -> Option<&'static Fd> {
    let index = usize::try_from(fd).ok()?;
    let chunk = TABLE.get(index >> CHUNK_BITS)?.load(Ordering::Acquire);
    if chunk.is_null() {
        return None;
    }
    // SAFETY: a non-null chunk pointer is a leaked allocation of `CHUNK`
    // entries (see `get_or_alloc`) that is never freed, and the offset is
    // below `CHUNK`.
    Some(unsafe { &*chunk.add(index & (CHUNK - 1)) })
}

/// The entry of `fd`, allocating its chunk first if need be (`None` past the
/// table's end).
pub(super) fn get_or_alloc(fd: RawFd) -> Option<&'static Fd> {
    if let Some(entry) = get(fd) {
        return Some(entry);
    }
    let index = usize::try_from(fd).ok()?;
    let slot = TABLE.get(index >> CHUNK_BITS)?;
    let base = (index >> CHUNK_BITS) << CHUNK_BITS;
    let chunk: Box<[Fd]> = (0..CHUNK).map(|i| Fd::new((base + i) as RawFd)).collect();
    let chunk = Box::into_raw(chunk).cast::<Fd>();
    if let Err(_other) = slot.compare_exchange(
        std::ptr::null_mut(),
        chunk,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // Another thread installed this chunk first: free ours.
        // SAFETY: `chunk` came from `Box::into_raw` of a `CHUNK`-long boxed
        // slice just above, and nobody else has seen it.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(chunk, CHUNK)) });
    }
    get(fd)
}

/// `fd` was just made by a hooked call: a fresh entry, `nonblocking` if the
/// call asked for it.
pub(super) fn track(fd: RawFd, nonblocking: bool) {
    if let Some(entry) = get_or_alloc(fd) {
        entry.forget();
        let flags = if nonblocking {
            TRACKED | USER_NONBLOCK
        } else {
            TRACKED
        };
        entry.flags.store(flags, Ordering::Release);
    }
}

/// `fd` is being closed (or replaced by `dup2`): whatever waits on it wakes
/// and fails, and it is deregistered while it is still open.
pub(super) fn forget(fd: RawFd) {
    if let Some(entry) = get(fd) {
        entry.forget();
    }
}

/// `to` is a duplicate of `from` (`dup`, `dup2`, `F_DUPFD`): it shares the
/// open file description, hence its `O_NONBLOCK` and socket timeouts.
pub(super) fn copy(from: RawFd, to: RawFd) {
    let Some(source) = get(from) else {
        return forget(to);
    };
    if let Some(entry) = get_or_alloc(to) {
        entry.forget();
        for (to, from) in entry.timeouts.iter().zip(&source.timeouts) {
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        entry
            .flags
            .store(source.flags.load(Ordering::Acquire), Ordering::Release);
        entry.sync_hidden();
    }
}

impl Fd {
    fn new(fd: RawFd) -> Fd {
        Fd {
            flags: AtomicU32::new(0),
            timeouts: [AtomicU64::new(0), AtomicU64::new(0)],
            generation: AtomicU32::new(0),
            source: Source::new(Number(fd)),
        }
    }

    /// Brings the number's bit in [`HIDDEN`] in line with its flags.
    fn sync_hidden(&self) {
        let index = self.source.get_ref().0 as usize;
        let bit = 1u64 << (index % 64);
        if self.hides_nonblock() {
            HIDDEN[index / 64].fetch_or(bit, Ordering::Relaxed);
        } else {
            HIDDEN[index / 64].fetch_and(!bit, Ordering::Relaxed);
        }
    }

    fn forget(&self) {
        self.flags.store(0, Ordering::Release);
        self.sync_hidden();
        for timeout in &self.timeouts {
            timeout.store(0, Ordering::Relaxed);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.source.reset();
    }

    /// True when a blocking call on it should park a fiber: the process made
    /// it through a hooked call and the user did not ask for non-blocking.
    #[inline(always)]
    pub(super) fn parks(&self) -> bool {
        self.flags.load(Ordering::Acquire) & (TRACKED | USER_NONBLOCK) == TRACKED
    }

    /// True when the hooks made it non-blocking behind a user who did not
    /// ask for it: a blocking call outside a fiber must then wait itself.
    fn hides_nonblock(&self) -> bool {
        self.flags.load(Ordering::Acquire) & (TRACKED | USER_NONBLOCK | SYS_NONBLOCK)
            == TRACKED | SYS_NONBLOCK
    }

    /// True if the hooks set `O_NONBLOCK` on it.
    pub(super) fn sys_nonblock(&self) -> bool {
        self.flags.load(Ordering::Acquire) & SYS_NONBLOCK != 0
    }

    /// True if the process made it through a hooked call.
    pub(super) fn tracked(&self) -> bool {
        self.flags.load(Ordering::Acquire) & TRACKED != 0
    }

    /// Records the user's wish (`F_SETFL`, `FIONBIO`).
    pub(super) fn set_user_nonblock(&self, on: bool) {
        if on {
            self.flags.fetch_or(USER_NONBLOCK, Ordering::AcqRel);
        } else {
            self.flags.fetch_and(!USER_NONBLOCK, Ordering::AcqRel);
        }
        self.sync_hidden();
    }

    /// Sets `O_NONBLOCK` on `fd` (once), so that a fiber parks instead of the
    /// thread blocking in the kernel.
    #[inline]
    pub(super) fn make_nonblocking(&self, fd: RawFd) -> io::Result<()> {
        if self.sys_nonblock() {
            return Ok(());
        }
        // SAFETY: F_GETFL takes no argument and touches no memory of ours.
        let flags = unsafe { real::fcntl()(fd, libc::F_GETFL) };
        if flags == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: F_SETFL takes an int argument and touches no memory of ours.
        if unsafe { real::fcntl()(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } == -1 {
            return Err(io::Error::last_os_error());
        }
        self.flags.fetch_or(SYS_NONBLOCK, Ordering::AcqRel);
        self.sync_hidden();
        Ok(())
    }

    /// The generation, to compare after a wait.
    #[inline(always)]
    pub(super) fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    /// The user's `SO_RCVTIMEO` (`Read`) or `SO_SNDTIMEO` (`Write`).
    #[inline]
    pub(super) fn timeout(&self, interest: Interest) -> Option<Duration> {
        match self.timeouts[interest as usize].load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Records a `SO_RCVTIMEO` or `SO_SNDTIMEO` (zero: none, as the kernel reads it).
    pub(super) fn set_timeout(&self, interest: Interest, timeout: Duration) {
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        self.timeouts[interest as usize].store(nanos, Ordering::Relaxed);
    }
}
