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
//! 32 K per process. When `mmap` or `mprotect` fails we find out which limit was
//! hit and say so, with the way to raise it, in the returned `io::Error`.

use std::io;
use std::ptr;

use corosensei::stack::valgrind::ValgrindStackRegistration;
use corosensei::stack::{Stack, StackPointer};

use super::syscall;

/// Size of one memory page, read once.
pub(crate) fn page_size() -> usize {
    use std::sync::OnceLock;
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // sysconf(_SC_PAGESIZE) takes no pointers and cannot fail on Unix.
        let page = syscall!(sysconf(libc::_SC_PAGESIZE)).unwrap_or(4096) as usize;
        page.max(4096)
    })
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
    _valgrind: ValgrindStackRegistration,
}

impl GuardedStack {
    /// Maps a new stack with at least `size` usable bytes.
    pub(crate) fn new(size: usize) -> io::Result<GuardedStack> {
        let page = page_size();
        let usable = usable_size(size)?;
        let len = usable.checked_add(page).ok_or_else(|| too_large(size))?;

        // A fresh anonymous private mapping: no fd, no fixed address.
        let addr = unsafe_mmap(len).map_err(|e| explain(e, usable))?;
        let stack = GuardedStack {
            bottom: addr as usize,
            len,
            _valgrind: ValgrindStackRegistration::new(addr.cast(), len),
        };
        // The guard page is the first page of the mapping we own; on failure
        // `stack` is dropped and the mapping released.
        syscall!(mprotect(addr, page, libc::PROT_NONE)).map_err(|e| explain(e, usable))?;
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
        // We own exactly this mapping; nothing points into it once the stack is
        // dropped (coroutines give their stack back only after finishing).
        let res = syscall!(munmap(self.bottom as *mut libc::c_void, self.len));
        debug_assert!(res.is_ok(), "munmap of a fiber stack failed: {res:?}");
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
fn explain(err: io::Error, size: usize) -> io::Error {
    if err.raw_os_error() != Some(libc::ENOMEM) {
        return io::Error::new(
            err.kind(),
            format!("cannot map a {} KiB fiber stack: {err}", size / 1024),
        );
    }
    let maps = count_mappings();
    let max = read_max_map_count();
    let message = match (maps, max) {
        (Some(maps), Some(max)) if maps + 2 >= max => format!(
            "cannot map a {} KiB fiber stack: the process has {maps} memory mappings and the \
             kernel limit vm.max_map_count is {max} (each guarded fiber stack takes 2, so about \
             {} fibers can hold a stack at once). Raise it with \
             `sudo sysctl -w vm.max_map_count={}`, or keep fewer fibers alive at once",
            size / 1024,
            max / 2,
            max.saturating_mul(4).max(262_144),
        ),
        _ => format!(
            "cannot map a {} KiB fiber stack: out of memory (ENOMEM; check `ulimit -v` and the \
             memory available), or use a smaller stack size",
            size / 1024
        ),
    };
    io::Error::new(io::ErrorKind::OutOfMemory, message)
}

fn read_max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn count_mappings() -> Option<usize> {
    let maps = std::fs::read("/proc/self/maps").ok()?;
    Some(maps.iter().filter(|&&b| b == b'\n').count())
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
