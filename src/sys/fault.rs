//! Stack-overflow reporting for fibers.
//!
//! std reports an overflow of a *thread's* stack ("thread 'x' has overflowed its
//! stack") from a `SIGSEGV` handler that knows only thread stacks; for a fiber's
//! stack the process would die with a bare segmentation fault. So, once per
//! process, we install a `SIGSEGV`/`SIGBUS` handler (`SA_ONSTACK`, so it runs on
//! the thread's alternate signal stack: the faulting stack is exhausted) that:
//!
//! 1. reads the running fiber's guard-page range from a thread-local that the
//!    scheduler sets around every resume ([`set_running`]);
//! 2. if the fault address lies in that guard page, writes which fiber overflowed
//!    and its stack size to stderr with `write(2)` and aborts;
//! 3. otherwise chains to the handler that was installed before ours (std's, or
//!    the default action), so every other fault behaves exactly as before.
//!
//! Everything the handler touches is async-signal-safe: a `Cell` thread-local
//! with const initialisation and no destructor, a stack buffer, `write`, `abort`.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::OnceLock;

use super::syscall;

/// What the handler needs to know about the fiber that is running.
///
/// Lives inside the fiber's task; [`set_running`] publishes a pointer to it for
/// exactly as long as the fiber runs.
#[derive(Debug)]
pub(crate) struct FaultInfo {
    /// The guard page, `[lo, hi)`; set when the fiber gets its stack.
    pub(crate) guard: Cell<(usize, usize)>,
    /// Usable stack bytes.
    pub(crate) size: Cell<usize>,
    /// Fiber id.
    pub(crate) id: u64,
    /// Fiber name, if any; points into the task, which outlives the run.
    pub(crate) name: Option<std::sync::Arc<str>>,
}

thread_local! {
    /// The running fiber's fault info, or null when the scheduler itself runs.
    static RUNNING: Cell<*const FaultInfo> = const { Cell::new(ptr::null()) };
    /// An alternate signal stack we installed for this thread, if it had none.
    static ALT_STACK: RefCell<Option<AltStack>> = const { RefCell::new(None) };
    /// This thread has been checked for an alternate signal stack.
    static CHECKED: Cell<bool> = const { Cell::new(false) };
}

/// Publishes (or, with null, withdraws) the running fiber's fault info.
///
/// The caller keeps `info` alive until it calls `set_running(null)`.
#[inline]
pub(crate) fn set_running(info: *const FaultInfo) {
    RUNNING.with(|r| r.set(info));
}

/// Publishes `info` and returns what was published before (for nesting: a
/// generator resumed inside a fiber restores the fiber's info afterwards).
#[inline]
pub(crate) fn replace_running(info: *const FaultInfo) -> *const FaultInfo {
    RUNNING.with(|r| r.replace(info))
}

/// The running fiber's usable stack, `[lo, hi)`, if a fiber runs. Only
/// reads a const thread-local and the fiber's own cells: async-signal-safe.
pub(crate) fn running_stack() -> Option<(usize, usize)> {
    let running = RUNNING.with(Cell::get);
    if running.is_null() {
        return None;
    }
    // SAFETY: a non-null RUNNING points at the running fiber's info, which
    // the scheduler keeps alive until it withdraws it.
    let info = unsafe { &*running };
    let (_, top_of_guard) = info.guard.get();
    Some((top_of_guard, top_of_guard + info.size.get()))
}

/// The handlers that were installed before ours, for chaining.
struct Previous {
    segv: libc::sigaction,
    bus: libc::sigaction,
}

// SAFETY: `sigaction` is plain data (a handler address, a mask and flags),
// written once before the handler can run and only read afterwards.
unsafe impl Sync for Previous {}
// SAFETY: as above, plain data.
unsafe impl Send for Previous {}

static PREVIOUS: OnceLock<Previous> = OnceLock::new();

/// Installs the process-wide handler (once) and makes sure the calling thread
/// has an alternate signal stack for it to run on (once per thread). Cheap
/// after the first call on a thread: two loads.
#[inline]
pub(crate) fn install() {
    if !CHECKED.with(Cell::get) {
        install_slow();
    }
}

#[cold]
fn install_slow() {
    PREVIOUS.get_or_init(|| {
        let segv = replace_handler(libc::SIGSEGV);
        let bus = replace_handler(libc::SIGBUS);
        Previous { segv, bus }
    });
    ensure_alt_stack();
    CHECKED.with(|c| c.set(true));
}

fn replace_handler(signal: libc::c_int) -> libc::sigaction {
    // SAFETY: all-zero is a valid `sigaction` (no handler, empty mask, no flags).
    let mut new: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    new.sa_sigaction = on_fault as *const () as libc::sighandler_t;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: Both pointers are to live, exclusively borrowed sigaction structs.
    if unsafe { syscall!(sigaction(signal, &new, &mut old)) }.is_err() {
        old.sa_sigaction = libc::SIG_DFL;
    }
    old
}

/// std gives its own threads an alternate signal stack; threads made another way
/// may lack one, and without it our handler would run on the overflowed stack.
fn ensure_alt_stack() {
    // SAFETY: all-zero is a valid `stack_t`.
    let mut current: libc::stack_t = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: Querying only: null new stack, valid out-pointer.
    if unsafe { syscall!(sigaltstack(ptr::null(), &mut current)) }.is_err() {
        return;
    }
    if current.ss_flags & libc::SS_DISABLE == 0 {
        return; // this thread already has one
    }
    ALT_STACK.with(|slot| {
        if slot.borrow().is_none() {
            *slot.borrow_mut() = AltStack::new();
        }
    });
}

/// An alternate signal stack owned by this module; removed at thread exit.
struct AltStack {
    addr: *mut libc::c_void,
    len: usize,
}

impl AltStack {
    const SIZE: usize = 64 * 1024;

    fn new() -> Option<AltStack> {
        // SAFETY: fresh anonymous mapping, result checked against MAP_FAILED.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                Self::SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return None;
        }
        let stack = AltStack {
            addr,
            len: Self::SIZE,
        };
        let new = libc::stack_t {
            ss_sp: addr,
            ss_flags: 0,
            ss_size: Self::SIZE,
        };
        // SAFETY: `new` describes the mapping above, which stays alive while installed.
        unsafe { syscall!(sigaltstack(&new, ptr::null_mut())) }.ok()?;
        Some(stack)
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let disable = libc::stack_t {
            ss_sp: ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: Uninstall before unmapping; this thread is exiting, not handling a signal.
        if unsafe { syscall!(sigaltstack(&disable, ptr::null_mut())) }.is_ok() {
            // SAFETY: `addr`/`len` are the mapping this struct made for the
            // alternate stack, which was just uninstalled.
            let _ = unsafe { syscall!(munmap(self.addr, self.len)) };
        }
    }
}

extern "C" fn on_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let running = RUNNING.with(|r| r.get());
    // SAFETY: a non-null pointer is published only while that fiber runs, and
    // the fault happened on this thread, so the fiber is still running.
    if let Some(fiber) = unsafe { running.as_ref() } {
        let (lo, hi) = fiber.guard.get();
        if addr >= lo && addr < hi {
            report_overflow(fiber);
        }
    }
    chain(signal, info, context);
}

fn report_overflow(fiber: &FaultInfo) -> ! {
    let mut message = StackBuf::default();
    let _ = if fiber.id == 0 {
        write!(
            message,
            "\nfiberloop: a generator has overflowed its stack of {} bytes\n",
            fiber.size.get()
        )
    } else {
        write!(
            message,
            "\nfiberloop: fiber #{} '{}' has overflowed its stack of {} bytes\n",
            fiber.id,
            fiber.name.as_deref().unwrap_or("<unnamed>"),
            fiber.size.get(),
        )
    };
    let _ = message.write_str(
        "fatal runtime error: stack overflow (raise it with fiberloop::Builder::stack_size), aborting\n",
    );
    let bytes = message.as_bytes();
    // SAFETY: write(2) is async-signal-safe and `bytes` is a live buffer.
    unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
    // SAFETY: abort is async-signal-safe and never returns.
    unsafe { libc::abort() }
}

/// Hands the fault to whoever had the signal before us.
fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let Some(previous) = PREVIOUS.get() else {
        return;
    };
    let prev = if signal == libc::SIGBUS {
        &previous.bus
    } else {
        &previous.segv
    };
    let handler = prev.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction runs
        // again and the kernel applies the default (core dump), as std does.
        // SAFETY: `prev` is a valid sigaction we saved at install time.
        let _ = unsafe { syscall!(sigaction(signal, prev, ptr::null_mut())) };
        return;
    }
    if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: with SA_SIGINFO the saved address is a three-argument handler.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(signal, info, context);
    } else {
        // SAFETY: without SA_SIGINFO the saved address is a one-argument handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(signal);
    }
}

/// A fixed buffer for formatting inside the signal handler (no allocation).
struct StackBuf {
    buf: [u8; 512],
    len: usize,
}

impl Default for StackBuf {
    fn default() -> Self {
        StackBuf {
            buf: [0; 512],
            len: 0,
        }
    }
}

impl StackBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
