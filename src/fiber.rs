//! Fibers: the stackful coroutine under each task, and the `std::thread`-like
//! API to spawn them.
//!
//! A fiber is a [`corosensei::Coroutine`] on a pooled [guarded stack](crate::stack).
//! The scheduler resumes it with [`Resume`]; the fiber gives control back with
//! [`Suspend`]: `Yield` (queue me again) or `Park` (a waker will queue me).
//!
//! ```text
//!   scheduler stack                      fiber stack
//!   ---------------                      -----------
//!   run_task(task) --resume(Run)-------> f() ... read() -> WouldBlock
//!                                          register waker, suspend(Park)
//!   <---------------------Park---------- (switch, ~5 ns)
//!   poll I/O, timers; waker.wake()
//!     -> task back on the ready queue
//!   run_task(task) --resume(Run)-------> read() again -> Ok(n) ... returns
//!   <-------------------Return(output)-- stack goes back to the pool
//! ```
//!
//! Cancellation ([`JoinHandle::cancel`], or the end of a loop) resumes a
//! suspended fiber with `Resume::Unwind`: the suspend point raises a private
//! panic payload ([`ForcedUnwind`]) that unwinds the fiber's stack, running
//! destructors, and is caught at the fiber's root. A fiber never suspends
//! while it is unwinding (`std::thread::panicking()` is per thread, and other
//! fibers would see it): a blocking call in a destructor then returns a
//! `Cancelled` error at once.

use std::any::Any;
use std::cell::Cell;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult};

use crate::scheduler;
use crate::stack::{self, Stack};
use crate::sys::signal::{self, FaultInfo};
use crate::task::{Closure, Fiber, JoinHandle};
use crate::wait;

/// How the scheduler resumes a fiber's coroutine.
///
/// `Resume` and `Suspend` are one-byte `Copy` values on purpose: they cross
/// every switch, and anything bigger or with drop glue makes the switch path
/// too large to inline (see docs/benchmarks.md). The closure a fiber starts
/// with and the result it ends with travel through the coroutine's [`Slots`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Carry on; to an idle coroutine: run the closure in the start slot.
    Run,
    /// Unwind the stack: the loop is cancelling this fiber.
    Unwind,
    /// (To an idle coroutine) return from the root, so the stack can be reused.
    Retire,
}

/// Why a fiber's coroutine gave control back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suspend {
    /// Still runnable: put it at the back of the ready queue.
    Yield,
    /// Waiting: a waker registered somewhere will queue it.
    Park,
    /// The fiber's closure ended (its result is in the exit slot); the
    /// coroutine is idle now, waiting at its root for the next closure.
    Done,
}

/// How a fiber's closure ended: its boxed value, or a caught panic.
pub(crate) type Exit = std::thread::Result<Box<dyn Any>>;

type Yielder = corosensei::Yielder<Resume, Suspend>;

/// The panic payload that unwinds a cancelled fiber. Raised with
/// `resume_unwind`, so no panic message is printed.
pub(crate) struct ForcedUnwind;

thread_local! {
    /// The running fiber's yielder; null while the scheduler (or a callback) runs.
    /// A fiber sets it each time it gains control, so it is always its own.
    static YIELDER: Cell<*const Yielder> = const { Cell::new(ptr::null()) };
}

/// A coroutine that runs fibers' closures, one after another.
///
/// Creating a coroutine (stack from the pool, initial frame) and tearing it
/// down cost more than a fiber's whole life when the fiber is short, so a
/// coroutine whose closure has ended is not dropped: it waits at its root,
/// idle, and the loop hands it the next fiber's closure (`Resume::Start`).
///
/// ```text
///   root:  loop {
///            Run      -> f = START slot; EXIT slot = catch_unwind(f);
///                        suspend(Done) -> idle
///            Retire   -> return (the stack goes back to the pool)
///          }
/// ```
///
/// A `Coro` is one pointer: moving it between a task and the idle list copies
/// a pointer, not the ~100-byte coroutine state.
pub(crate) struct Coro(Box<CoroState>);

struct CoroState {
    coroutine: Coroutine<Resume, Suspend, (), Stack>,
    slots: Rc<Slots>,
    guard: (usize, usize),
    size: usize,
}

/// What passes between the scheduler and a coroutine's root besides the
/// one-byte `Resume`/`Suspend`.
#[derive(Default)]
struct Slots {
    /// The closure an idle coroutine is to run next (set just before resuming it).
    start: Cell<Option<Closure>>,
    /// How the last closure ended (set just before `Suspend::Done`).
    exit: Cell<Option<Exit>>,
}

impl Coro {
    pub(crate) fn new(stack: Stack) -> Coro {
        let (guard, size) = (stack.guard(), stack.size());
        let slots = Rc::new(Slots::default());
        let root_slots = slots.clone();
        let coroutine = Coroutine::with_stack(stack, move |yielder: &Yielder, first: Resume| {
            let slots = root_slots;
            let mut next = first;
            loop {
                YIELDER.with(|y| y.set(yielder));
                let job = match next {
                    Resume::Run => slots.start.take(),
                    Resume::Unwind | Resume::Retire => None,
                };
                let Some(f) = job else { return };
                let exit = panic::catch_unwind(AssertUnwindSafe(f));
                slots.exit.set(Some(exit));
                next = yielder.suspend(Suspend::Done);
            }
        });
        let state = CoroState {
            coroutine,
            slots,
            guard,
            size,
        };
        Coro(Box::new(state))
    }

    /// The guard page range and usable size of this coroutine's stack.
    pub(crate) fn stack_bounds(&self) -> ((usize, usize), usize) {
        (self.0.guard, self.0.size)
    }

    /// Usable stack size.
    pub(crate) fn size(&self) -> usize {
        self.0.size
    }

    /// Starts `f` on this idle coroutine; runs until it suspends or ends.
    pub(crate) fn start(&mut self, fault: &FaultInfo, f: Closure) -> CoroutineResult<Suspend, ()> {
        self.0.slots.start.set(Some(f));
        self.resume(fault, Resume::Run)
    }

    /// Switches to the fiber until it suspends or its closure ends.
    #[inline]
    pub(crate) fn resume(
        &mut self,
        fault: &FaultInfo,
        how: Resume,
    ) -> CoroutineResult<Suspend, ()> {
        signal::set_running(fault);
        let result = self.0.coroutine.resume(how);
        signal::set_running(ptr::null());
        YIELDER.with(|y| y.set(ptr::null()));
        result
    }

    /// The result the fiber left with `Suspend::Done`.
    pub(crate) fn take_exit(&self) -> Exit {
        let exit = self.0.slots.exit.take();
        exit.expect("Suspend::Done comes with an exit")
    }

    /// Ends an idle coroutine and returns its stack, for the pool.
    pub(crate) fn retire(self) -> Stack {
        let CoroState { mut coroutine, .. } = *self.0;
        let result = coroutine.resume(Resume::Retire);
        YIELDER.with(|y| y.set(ptr::null()));
        debug_assert!(matches!(result, CoroutineResult::Return(())));
        coroutine.into_stack()
    }
}

/// Makes the calling code count as outside any fiber until the guard drops.
///
/// A generator's body runs on the generator's own stack; a blocking call there
/// must not suspend the enclosing fiber from a foreign stack, so while a
/// generator runs, `in_fiber()` is false and blocking calls report it.
#[inline]
pub(crate) fn leave_fiber() -> impl Drop {
    struct Restore(*const Yielder);
    impl Drop for Restore {
        #[inline]
        fn drop(&mut self) {
            if !self.0.is_null() {
                YIELDER.with(|y| y.set(self.0));
            }
        }
    }
    let current = YIELDER.with(Cell::get);
    if !current.is_null() {
        YIELDER.with(|y| y.set(ptr::null()));
    }
    Restore(current)
}

/// True if the running fiber has been asked to cancel.
pub(crate) fn current_cancelled() -> bool {
    in_fiber()
        && scheduler::with_core(|core| core.with_current(crate::task::TaskCell::cancel_requested))
            .flatten()
            .unwrap_or(false)
}

/// True when called from inside a fiber.
#[inline]
pub(crate) fn in_fiber() -> bool {
    !YIELDER.with(Cell::get).is_null()
}

/// Gives control back to the scheduler. Must be called from a fiber.
#[inline(always)]
pub(crate) fn suspend(reason: Suspend) -> Resume {
    let yielder = YIELDER.with(Cell::get);
    assert!(!yielder.is_null(), "fiberloop: suspend outside a fiber");
    // SAFETY: YIELDER is non-null only while a fiber runs, and the fiber that
    // runs set it to the `Yielder` on its own stack (at start and after every
    // suspend). That yielder lives as long as the coroutine, which is running,
    // and we are on its stack.
    let resume = unsafe { &*yielder }.suspend(reason);
    YIELDER.with(|y| y.set(yielder));
    resume
}

/// Installs, once per process, a panic hook that names the fiber a panic
/// happens in: `thread 'main' fiber #3 'conn' panicked at src/main.rs:9:5:`,
/// where std's own hook can only name the thread. Outside fibers it hands
/// over to the hook that was there before. A hook set later replaces it.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| match running_fiber_label() {
            Some(label) => report_fiber_panic(&label, info),
            None => previous(info),
        }));
    });
}

/// `fiber #3 'conn'` (or `fiber #3`) for the running fiber, if any.
fn running_fiber_label() -> Option<String> {
    if !in_fiber() {
        return None;
    }
    let task = scheduler::with_core(|core| core.current_task()).flatten()?;
    Some(match &task.name {
        Some(name) => format!("fiber #{} '{name}'", task.id),
        None => format!("fiber #{}", task.id),
    })
}

/// Prints a panic the way std's default hook does, with the fiber named.
fn report_fiber_panic(label: &str, info: &panic::PanicHookInfo<'_>) {
    use std::backtrace::{Backtrace, BacktraceStatus};
    use std::sync::atomic::{AtomicBool, Ordering};
    static NOTED: AtomicBool = AtomicBool::new(false);
    let thread = std::thread::current();
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    let location = info
        .location()
        .map_or_else(String::new, |l| format!(" at {l}"));
    let backtrace = Backtrace::capture();
    let tail = match backtrace.status() {
        BacktraceStatus::Captured => format!("stack backtrace:\n{backtrace}"),
        _ if !NOTED.swap(true, Ordering::Relaxed) => "note: run with `RUST_BACKTRACE=1` \
            environment variable to display a backtrace\n"
            .to_owned(),
        _ => String::new(),
    };
    eprint!(
        "thread '{}' {label} panicked{location}:\n{message}\n{tail}",
        thread.name().unwrap_or("<unnamed>")
    );
}

/// A fiber factory, to set a fiber's name or stack size (like
/// [`std::thread::Builder`]).
///
/// ```
/// let answer = fiberloop::run(|| {
///     fiberloop::Builder::new()
///         .name("worker")
///         .stack_size(256 * 1024)
///         .spawn(|| fiberloop::current().name().map(str::to_owned))
///         .expect("spawn")
///         .join()
///         .unwrap()
/// });
/// assert_eq!(answer.as_deref(), Some("worker"));
/// ```
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with no name and the [default stack size](crate::DEFAULT_STACK_SIZE).
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the fiber (shown by [`Fiber::name`], in stack-overflow reports and
    /// in debug output).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Usable stack size in bytes, rounded up to whole pages (at least 4 KiB).
    /// A guard page below it turns an overflow into a reported abort.
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Spawns the fiber on the current thread's event loop. It is queued to run
    /// when the calling fiber next blocks or yields, ahead of older work.
    ///
    /// The closure need not be `Send`: a fiber never leaves its thread.
    ///
    /// # Errors
    /// - `NotFound` when the thread has no event loop;
    /// - `InvalidInput` for an impossible stack size;
    /// - `OutOfMemory` when no stack can be mapped; the message says whether
    ///   memory or the kernel's `vm.max_map_count` ran out, and how to raise it.
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let stack_size = self.stack_size.unwrap_or(stack::DEFAULT_STACK_SIZE);
        let closure: Closure = Box::new(move || Box::new(f()) as Box<dyn Any>);
        let name = self.name.map(Arc::from);
        let task = scheduler::with_core(|core| core.spawn(closure, name, stack_size))
            .ok_or_else(no_loop)??;
        Ok(JoinHandle::new(task))
    }
}

fn no_loop() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        "no fiberloop event loop on this thread: start one with fiberloop::run or EventLoop::new",
    )
}

/// Spawns a fiber on the current thread's event loop and returns its handle.
///
/// # Panics
/// If the thread has no event loop or no stack can be mapped; use
/// [`Builder::spawn`] to get those as errors.
///
/// ```
/// fiberloop::run(|| {
///     let handle = fiberloop::spawn(|| 6 * 7);
///     assert_eq!(handle.join().unwrap(), 42);
/// });
/// ```
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    Builder::new()
        .spawn(f)
        .unwrap_or_else(|e| panic!("fiberloop::spawn: {e}"))
}

/// Lets the other ready fibers run, then carries on. Outside a fiber this is
/// [`std::thread::yield_now`].
#[inline] // the stack switch costs least where it is not behind a call: see docs/benchmarks.md
pub fn yield_now() {
    if in_fiber() {
        // A cancellation arriving here unwinds; mid-unwind this just returns.
        let _ = wait::park(Suspend::Yield);
    } else {
        std::thread::yield_now();
    }
}

/// Blocks the calling fiber for at least `duration` (the thread, outside a
/// fiber). It returns early only inside a [`timeout`](crate::timeout) scope
/// whose deadline comes first, or when called while the fiber is unwinding
/// (in a destructor; an unwinding fiber never parks). A cancelled fiber
/// does not return from `sleep`: it unwinds. `sleep(Duration::ZERO)` yields,
/// like asyncio's `sleep(0)`.
#[inline] // so that `sleep(Duration::ZERO)` is as cheap as `yield_now`
pub fn sleep(duration: Duration) {
    if duration.is_zero() {
        yield_now();
    } else {
        sleep_for(duration);
    }
}

fn sleep_for(duration: Duration) {
    sleep_until(crate::time::deadline_after(duration));
}

/// Blocks the calling fiber until `deadline` (the thread, outside a fiber).
pub fn sleep_until(deadline: Instant) {
    let _ = wait::block_on(Some(deadline), |_| std::task::Poll::<()>::Pending);
}

/// The fiber that is running.
///
/// # Panics
/// Outside a fiber; see [`try_current`].
pub fn current() -> Fiber {
    try_current().expect("fiberloop::current called outside a fiber")
}

/// The fiber that is running, or `None` outside a fiber.
pub fn try_current() -> Option<Fiber> {
    if !in_fiber() {
        return None;
    }
    scheduler::with_core(|core| core.current_task())
        .flatten()
        .map(Fiber::new)
}
