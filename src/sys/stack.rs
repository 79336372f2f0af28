//! Guarded fiber stacks: one `mmap` each, with a `PROT_NONE` guard page below.
//!
//! ```text
//!   high addresses
//!   +--------------------------+ <- base()   (corosensei starts the fiber here)
//!   |                          |
//!   |   usable stack           |   `size` bytes, PROT_READ | PROT_WRITE,
//!   |   (grows downwards)      |   pages are committed only when touched
//!   |                          |
//!   +--------------------------+ <- guard_top()
//!   |   guard page             |   PROT_NONE: an overflow faults here, and the
//!   +--------------------------+ <- limit()  SIGSEGV handler names the fiber
//!   low addresses
//! ```
//!
//! The two protections make two kernel mappings (VMAs) per stack, so
//! `vm.max_map_count` (65530 by default on Linux) caps live stacks at about
//! 32 K per process. Running into that cap would also starve everything else
//! that maps memory (`malloc` among them, whose failure aborts), so we stop
//! short of it: at most [`stack_limit`] stacks are mapped at once, which
//! leaves [`HEADROOM`] mappings to the rest of the process. The live count is
//! kept in a counter and the limit is read once, so reporting the error needs
//! no file read and no large allocation at the moment memory is short.

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use corosensei::stack::valgrind::ValgrindStackRegistration;
use corosensei::stack::{Stack, StackPointer};

use super::syscall;

/// Size of one memory page, read once.
pub(crate) fn page_size() -> usize {
    use std::sync::OnceLock;
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf(_SC_PAGESIZE) takes no pointers and cannot fail on Unix.
        let page = unsafe { syscall!(sysconf(libc::_SC_PAGESIZE)) }.unwrap_or(4096) as usize;
        page.max(4096)
    })
}

/// Kernel mappings left to the rest of the process (heap arenas, thread
/// stacks, libraries) when fiber stacks are capped below `vm.max_map_count`.
pub(crate) const HEADROOM: usize = 4096;

/// Stacks mapped now, in every thread.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Stacks mapped now, in every thread (fibers', idle ones, generators').
pub(crate) fn live_stacks() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// `vm.max_map_count`, read once (65530, Linux's default, where it cannot be
/// read).
fn max_map_count() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65_530)
    })
}

/// The most stacks mapped at once: two mappings each, below
/// `vm.max_map_count` less [`HEADROOM`].
pub(crate) fn stack_limit() -> usize {
    max_map_count().saturating_sub(HEADROOM) / 2
}

/// The error for a stack refused at [`stack_limit`], with `count` stacks
/// (mapped, or promised to fibers) in use.
pub(crate) fn limit_error(size: usize, count: usize) -> io::Error {
    let max = max_map_count();
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "cannot map a {} KiB fiber stack: {count} fiber stacks are in use, the most this \
             process can hold: each guarded stack takes 2 kernel memory mappings and the limit \
             vm.max_map_count is {max} ({HEADROOM} are left to the rest of the process). \
             Raise it with `sudo sysctl -w vm.max_map_count={}`, or keep fewer fibers alive \
             at once",
            size / 1024,
            max.saturating_mul(4).max(262_144),
        ),
    )
}

/// A stack of `size` usable bytes above one guard page. Owns its mapping.
#[derive(Debug)]
pub(crate) struct GuardedStack {
    /// Lowest address of the mapping (start of the guard page).
    bottom: usize,
    /// Length of the whole mapping, guard page included.
    len: usize,
    /// Tells Valgrind about the stack so that `--tool=callgrind` and memcheck
    /// follow our stack switches. A no-op on real hardware.
    /// Dropped by hand in `drop`, *before* the `munmap`, as corosensei's own
    /// stacks do: valgrind must not keep a stack whose memory is gone.
    valgrind: std::mem::ManuallyDrop<ValgrindStackRegistration>,
}

impl GuardedStack {
    /// Maps a new stack with at least `size` usable bytes.
    pub(crate) fn new(size: usize) -> io::Result<GuardedStack> {
        let page = page_size();
        let usable = usable_size(size)?;
        let len = usable.checked_add(page).ok_or_else(|| too_large(size))?;
        if LIVE.fetch_add(1, Ordering::Relaxed) >= stack_limit() {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            return Err(limit_error(usable, stack_limit()));
        }
        // Counted from here: `Drop` uncounts it, and so does a failed map.
        let addr = match unsafe_mmap(len) {
            Ok(addr) => addr,
            Err(e) => {
                LIVE.fetch_sub(1, Ordering::Relaxed);
                return Err(explain(e, usable));
            }
        };
        let stack = GuardedStack {
            bottom: addr as usize,
            len,
            valgrind: std::mem::ManuallyDrop::new(ValgrindStackRegistration::new(addr.cast(), len)),
        };
        // SAFETY: The guard page is the first page of the mapping we own; on failure
        // `stack` is dropped and the mapping released.
        unsafe { syscall!(mprotect(addr, page, libc::PROT_NONE)) }
            .map_err(|e| explain(e, usable))?;
        Ok(stack)
    }

    /// Usable bytes above the guard page.
    pub(crate) fn size(&self) -> usize {
        self.len - page_size()
    }

    /// The guard page's address range `[limit, guard_top)`.
    pub(crate) fn guard(&self) -> (usize, usize) {
        (self.bottom, self.bottom + page_size())
    }
}

/// The usable size a request for `size` bytes gets: at least corosensei's
/// minimum, rounded up to whole pages.
pub(crate) fn usable_size(size: usize) -> io::Result<usize> {
    size.max(corosensei::stack::MIN_STACK_SIZE)
        .checked_next_multiple_of(page_size())
        .ok_or_else(|| too_large(size))
}

/// `mmap` of an anonymous, private, read-write region of `len` bytes.
fn unsafe_mmap(len: usize) -> io::Result<*mut libc::c_void> {
    // SAFETY: a null hint and no fd ask the kernel for a fresh region; nothing
    // existing is replaced, and the result is checked against MAP_FAILED.
    let addr = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(addr)
    }
}

impl Drop for GuardedStack {
    fn drop(&mut self) {
        // SAFETY: dropped once, here, and the field is not used afterwards.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.valgrind) };
        // SAFETY: We own exactly this mapping; nothing points into it once the stack is
        // dropped (coroutines give their stack back only after finishing).
        let res = unsafe { syscall!(munmap(self.bottom as *mut libc::c_void, self.len)) };
        debug_assert!(res.is_ok(), "munmap of a fiber stack failed: {res:?}");
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

// SAFETY: `base` and `limit` bound a mapping we own for our whole lifetime; the
// lowest page is PROT_NONE (the guard corosensei requires) and at least
// MIN_STACK_SIZE bytes above it are writable. Both ends are page-aligned, which
// satisfies STACK_ALIGNMENT.
unsafe impl Stack for GuardedStack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.bottom + self.len).expect("mapping is not at address 0")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.bottom).expect("mapping is not at address 0")
    }
}

fn too_large(size: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("fiber stack size {size} bytes is too large"),
    )
}

/// Rewrites a failed `mmap`/`mprotect` into an error that names the limit.
/// Reads no file and allocates little: memory may be short right now.
fn explain(err: io::Error, size: usize) -> io::Error {
    if err.raw_os_error() != Some(libc::ENOMEM) {
        return io::Error::new(
            err.kind(),
            format!("cannot map a {} KiB fiber stack: {err}", size / 1024),
        );
    }
    // Within reach of the mapping limit (other code maps memory too), the
    // limit is the likelier cause.
    if live_stacks() * 2 + 2 * HEADROOM >= max_map_count() {
        return limit_error(size, live_stacks());
    }
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "cannot map a {} KiB fiber stack: out of memory (ENOMEM with {} fiber stacks live; \
             check `ulimit -v` and the memory available), or use a smaller stack size",
            size / 1024,
            live_stacks(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_and_guards() {
        let stack = GuardedStack::new(10_000).unwrap();
        assert!(stack.size() >= 10_000);
        assert_eq!(stack.size() % page_size(), 0);
        let (lo, hi) = stack.guard();
        assert_eq!(lo, stack.limit().get());
        assert_eq!(hi - lo, page_size());
        assert_eq!(stack.base().get() - hi, stack.size());
    }

    #[test]
    fn absurd_size_is_a_clear_error() {
        let err = GuardedStack::new(usize::MAX - 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("too large"), "{err}");
    }

    #[test]
    fn enomem_names_a_limit() {
        let err = explain(io::Error::from_raw_os_error(libc::ENOMEM), 65536);
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        let text = err.to_string();
        assert!(text.contains("64 KiB"), "{text}");
        assert!(
            text.contains("vm.max_map_count") || text.contains("out of memory"),
            "{text}"
        );
    }
}
