//! Where is a thread right now: the blocking detector's signal handler.
//!
//! The watchdog thread (`rt::diag::watchdog`) sends `SIGURG` to a loop
//! thread that has not made progress for longer than its threshold. The
//! handler runs on that thread, in the middle of whatever it was doing, and
//! records in the thread's [`Sample`]:
//!
//! 1. who is running, through the probe the core installed (a plain `fn`
//!    that only reads: the running task's id, name and spawn location);
//! 2. the interrupted program counter, from the signal's `ucontext`;
//! 3. return addresses found by scanning the interrupted stack upwards from
//!    its stack pointer: words that point into an executable mapping just
//!    after a call instruction. Release builds keep no frame pointers, and a
//!    real unwinder is not async-signal-safe (it may take the loader's lock),
//!    so this is the crash reporters' "stack scan": every frame it finds is a
//!    real call site, though a stale one left in a dead frame can show up too.
//!
//! Everything the handler touches is async-signal-safe: atomics, a const
//! thread-local without destructor, and reads of memory known to be mapped
//! (the interrupted stack, within its bounds; code, within its mappings).
//! `SIGURG` is Go's choice for the same job: its default action is to ignore
//! it, and nothing sends it unless a socket asks (`F_SETOWN`). If the
//! process already has a `SIGURG` handler, the detector reports without
//! frames rather than replace it.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::panic::Location;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::syscall;

/// Most return addresses one sample keeps.
pub(crate) const MAX_FRAMES: usize = 32;
/// How far up the interrupted stack the scan looks.
const SCAN_BYTES: usize = 256 * 1024;
/// Bytes of a running task's name a sample keeps.
const NAME_BYTES: usize = 48;

const IDLE: u32 = 0;
const ASKED: u32 = 1;
const TAKEN: u32 = 2;

/// One thread's sample, written by the handler on that thread and read by
/// the watchdog after it sees `TAKEN`.
pub(crate) struct Sample {
    state: AtomicU32,
    pc: AtomicUsize,
    frames: [AtomicUsize; MAX_FRAMES],
    count: AtomicUsize,
    task: AtomicU64,
    fiber: std::sync::atomic::AtomicBool,
    name: [AtomicU8; NAME_BYTES],
    name_len: AtomicUsize,
    location: AtomicPtr<Location<'static>>,
    /// The thread's own stack, `[lo, hi)`, for a scan outside any fiber.
    thread_stack: (usize, usize),
    thread: libc::pthread_t,
}

/// What the handler found.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    /// The interrupted program counter, then return addresses, innermost first.
    pub(crate) frames: Vec<usize>,
    /// The running task, if a task was running.
    pub(crate) task: Option<SampledTask>,
}

/// The task a sample found running.
#[derive(Debug, Clone)]
pub(crate) struct SampledTask {
    pub(crate) id: u64,
    /// A fiber (else an async task).
    pub(crate) fiber: bool,
    pub(crate) name: Option<String>,
    pub(crate) location: &'static Location<'static>,
}

/// Fills in who is running; installed once by the core. Must only read.
pub(crate) type Probe = fn(&Sample);

static PROBE: OnceLock<Probe> = OnceLock::new();
/// Executable mappings, `[lo, hi)`, gathered when the handler is installed.
static CODE: OnceLock<Vec<(usize, usize)>> = OnceLock::new();
/// Whether the handler is ours to use (installed), or why not.
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

thread_local! {
    /// This thread's sample while a watched loop lives on it, else null.
    static CURRENT: Cell<*const Sample> = const { Cell::new(ptr::null()) };
}

impl Sample {
    /// A sample for the calling thread (call on the thread to be sampled).
    pub(crate) fn for_this_thread() -> Sample {
        Sample {
            state: AtomicU32::new(IDLE),
            pc: AtomicUsize::new(0),
            frames: std::array::from_fn(|_| AtomicUsize::new(0)),
            count: AtomicUsize::new(0),
            task: AtomicU64::new(0),
            fiber: std::sync::atomic::AtomicBool::new(false),
            name: std::array::from_fn(|_| AtomicU8::new(0)),
            name_len: AtomicUsize::new(0),
            location: AtomicPtr::new(ptr::null_mut()),
            thread_stack: thread_stack(),
            // SAFETY: pthread_self has no preconditions.
            thread: unsafe { libc::pthread_self() },
        }
    }

    /// For the probe: the running task (a fiber, or an async task).
    pub(crate) fn set_task(
        &self,
        id: u64,
        fiber: bool,
        name: Option<&str>,
        location: &'static Location<'static>,
    ) {
        self.task.store(id, Ordering::Relaxed);
        self.fiber.store(fiber, Ordering::Relaxed);
        let name = name.map_or(&[][..], str::as_bytes);
        let mut len = name.len().min(NAME_BYTES);
        while len > 0 && std::str::from_utf8(&name[..len]).is_err() {
            len -= 1; // cut at a character boundary
        }
        for (slot, byte) in self.name.iter().zip(&name[..len]) {
            slot.store(*byte, Ordering::Relaxed);
        }
        self.name_len.store(
            if name.is_empty() { usize::MAX } else { len },
            Ordering::Relaxed,
        );
        self.location
            .store(ptr::from_ref(location).cast_mut(), Ordering::Relaxed);
    }

    /// Interrupts the sampled thread and waits (up to `patience`) for its
    /// handler; `None` if the handler is not installed or did not answer.
    ///
    /// The caller guarantees the thread is alive for the whole call (the
    /// watchdog holds the loop's liveness lock).
    pub(crate) fn take(&self, patience: std::time::Duration) -> Option<Taken> {
        if !matches!(INSTALLED.get(), Some(Ok(()))) {
            return None;
        }
        self.count.store(0, Ordering::Relaxed);
        self.task.store(0, Ordering::Relaxed);
        self.location.store(ptr::null_mut(), Ordering::Relaxed);
        self.state.store(ASKED, Ordering::Release);
        // SAFETY: `thread` is the sampled thread's id, and the caller keeps
        // that thread alive for this call (see above).
        if unsafe { libc::pthread_kill(self.thread, libc::SIGURG) } != 0 {
            self.state.store(IDLE, Ordering::Relaxed);
            return None;
        }
        let start = std::time::Instant::now();
        while self.state.load(Ordering::Acquire) != TAKEN {
            if start.elapsed() > patience {
                self.state.store(IDLE, Ordering::Relaxed);
                return None;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        self.state.store(IDLE, Ordering::Relaxed);
        let mut frames = vec![self.pc.load(Ordering::Relaxed)];
        let count = self.count.load(Ordering::Relaxed).min(MAX_FRAMES);
        frames.extend(
            self.frames[..count]
                .iter()
                .map(|f| f.load(Ordering::Relaxed)),
        );
        let location = self.location.load(Ordering::Relaxed);
        let task = (!location.is_null()).then(|| {
            let len = self.name_len.load(Ordering::Relaxed);
            let name = (len != usize::MAX).then(|| {
                let bytes: Vec<u8> = self.name[..len]
                    .iter()
                    .map(|b| b.load(Ordering::Relaxed))
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            });
            // SAFETY: a non-null `location` came from a `&'static Location`.
            let location = unsafe { &*location };
            SampledTask {
                id: self.task.load(Ordering::Relaxed),
                fiber: self.fiber.load(Ordering::Relaxed),
                name,
                location,
            }
        });
        Some(Taken { frames, task })
    }
}

/// Installs the handler (once per process) and the probe; publishes
/// `sample` as this thread's. Returns why frames cannot be taken, if so.
pub(crate) fn watch_this_thread(sample: &Sample, probe: Probe) -> Result<(), String> {
    PROBE.get_or_init(|| probe);
    let installed = INSTALLED.get_or_init(install).clone();
    CURRENT.with(|c| c.set(sample));
    installed
}

/// This thread's sample is going away.
pub(crate) fn unwatch_this_thread() {
    CURRENT.with(|c| c.set(ptr::null()));
}

fn install() -> Result<(), String> {
    CODE.get_or_init(code_mappings);
    // SAFETY: all-zero is a valid `sigaction` (no handler, empty mask, no flags).
    let mut old: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: reading the current action into a live, exclusively borrowed struct.
    unsafe { syscall!(sigaction(libc::SIGURG, ptr::null(), &mut old)) }
        .map_err(|e| format!("cannot read the SIGURG action: {e}"))?;
    if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
        return Err(
            "SIGURG already has a handler, so the detector cannot sample where a task is".into(),
        );
    }
    // SAFETY: as above.
    let mut new: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    new.sa_sigaction = on_sample as *const () as libc::sighandler_t;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: both pointers are to live sigaction structs; the handler only
    // does what the module docs list.
    unsafe { syscall!(sigaction(libc::SIGURG, &new, ptr::null_mut())) }
        .map(drop)
        .map_err(|e| format!("cannot install the SIGURG handler: {e}"))
}

extern "C" fn on_sample(
    _signal: libc::c_int,
    _info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let sample = CURRENT.with(Cell::get);
    if sample.is_null() {
        return;
    }
    // SAFETY: a non-null CURRENT points at the sample of a loop that lives
    // on this thread; it is cleared before that sample is freed, on this
    // same thread, so it cannot go away while this handler runs.
    let sample = unsafe { &*sample };
    if sample.state.load(Ordering::Acquire) != ASKED {
        return;
    }
    if let Some(probe) = PROBE.get() {
        probe(sample);
    }
    let (pc, sp) = registers(context);
    sample.pc.store(pc, Ordering::Relaxed);
    let fiber = super::fault::running_stack();
    let bounds = [fiber, Some(sample.thread_stack)]
        .into_iter()
        .flatten()
        .find(|&(lo, hi)| sp >= lo && sp < hi);
    let mut count = 0;
    if let (Some((_, hi)), Some(code)) = (bounds, CODE.get()) {
        let end = hi.min(sp.saturating_add(SCAN_BYTES));
        let mut at = sp & !(size_of::<usize>() - 1);
        while at + size_of::<usize>() <= end && count < MAX_FRAMES {
            // SAFETY: `at` lies within the interrupted thread's (or fiber's)
            // mapped stack, between its stack pointer and its top.
            let word = unsafe { ptr::read_volatile(at as *const usize) };
            if is_return_address(word, code) {
                sample.frames[count].store(word, Ordering::Relaxed);
                count += 1;
            }
            at += size_of::<usize>();
        }
    }
    sample.count.store(count, Ordering::Relaxed);
    sample.state.store(TAKEN, Ordering::Release);
}

/// The interrupted program counter and stack pointer.
fn registers(context: *mut libc::c_void) -> (usize, usize) {
    // SAFETY: the kernel passes a valid `ucontext_t` to an SA_SIGINFO handler.
    let context = unsafe { &*(context as *const libc::ucontext_t) };
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        let regs = &context.uc_mcontext.gregs;
        (
            regs[libc::REG_RIP as usize] as usize,
            regs[libc::REG_RSP as usize] as usize,
        )
    }
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    {
        (
            context.uc_mcontext.pc as usize,
            context.uc_mcontext.sp as usize,
        )
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        let _ = context;
        (0, 0)
    }
}

/// True if `word` points into code just after a call instruction.
fn is_return_address(word: usize, code: &[(usize, usize)]) -> bool {
    if !code.iter().any(|&(lo, hi)| word > lo + 8 && word <= hi) {
        return false;
    }
    // SAFETY: `word - 8 .. word` lies within an executable mapping (checked
    // just above), which is readable.
    let before = |back: usize| unsafe { ptr::read_volatile((word - back) as *const u8) };
    if cfg!(target_arch = "x86_64") {
        // call rel32 (E8), or an indirect call FF /2 of 2 to 7 bytes.
        before(5) == 0xE8 || (2..=7).any(|n| before(n) == 0xFF && (before(n - 1) >> 3) & 7 == 2)
    } else if cfg!(target_arch = "aarch64") {
        let insn = u32::from_le_bytes([before(4), before(3), before(2), before(1)]);
        insn & 0xFC00_0000 == 0x9400_0000 || insn & 0xFFFF_FC1F == 0xD63F_0000
    } else {
        false
    }
}

/// The calling thread's stack, `[lo, hi)`, or an empty range.
fn thread_stack() -> (usize, usize) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: all-zero is a valid `pthread_attr_t` to be filled in.
        let mut attr: libc::pthread_attr_t = unsafe { MaybeUninit::zeroed().assume_init() };
        let mut addr: *mut libc::c_void = ptr::null_mut();
        let mut size: libc::size_t = 0;
        // SAFETY: `attr` is initialised by pthread_getattr_np before it is
        // read and destroyed once; the out-pointers are live locals.
        unsafe {
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                return (0, 0);
            }
            let got = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
            libc::pthread_attr_destroy(&mut attr);
            if got != 0 {
                return (0, 0);
            }
        }
        (addr as usize, addr as usize + size)
    }
    #[cfg(not(target_os = "linux"))]
    {
        (0, 0)
    }
}

/// Every executable mapping of the process's loaded objects.
fn code_mappings() -> Vec<(usize, usize)> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    #[cfg(target_os = "linux")]
    {
        unsafe extern "C" fn each(
            info: *mut libc::dl_phdr_info,
            _size: libc::size_t,
            data: *mut libc::c_void,
        ) -> libc::c_int {
            // SAFETY: dl_iterate_phdr passes a valid info; `data` is the
            // `ranges` vector below, borrowed for the call.
            let (info, ranges) = unsafe { (&*info, &mut *(data as *mut Vec<(usize, usize)>)) };
            for i in 0..usize::from(info.dlpi_phnum) {
                // SAFETY: `dlpi_phdr` has `dlpi_phnum` entries.
                let header = unsafe { &*info.dlpi_phdr.add(i) };
                if header.p_type == libc::PT_LOAD && header.p_flags & libc::PF_X != 0 {
                    let lo = info.dlpi_addr as usize + header.p_vaddr as usize;
                    ranges.push((lo, lo + header.p_memsz as usize));
                }
            }
            0
        }
        // SAFETY: the callback only reads the headers it is given and
        // pushes into `ranges`, which outlives the call.
        unsafe { libc::dl_iterate_phdr(Some(each), ptr::from_mut(&mut ranges).cast()) };
    }
    ranges
}
