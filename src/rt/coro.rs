//! The stackful coroutine under each fiber: a [`corosensei::Coroutine`] on a
//! pooled [guarded stack](crate::stack), the one-byte messages that cross
//! each switch, and the running fiber's `Yielder`.
//!
//! The scheduler resumes a coroutine with [`Resume`]; the fiber gives control
//! back with [`Suspend`]: `Yield` (queue me again) or `Park` (a waker will
//! queue me).
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
//!   <---------------------Done---------- coroutine -> the idle list
//! ```
//!
//! Cancellation ([`JoinHandle::cancel`](crate::JoinHandle::cancel), or the
//! end of a loop) resumes a suspended fiber with `Resume::Unwind`: the
//! suspend point raises a private panic payload ([`ForcedUnwind`]) that
//! unwinds the fiber's stack, running destructors, and is caught at the
//! fiber's root. A fiber is never left suspended while it is unwinding
//! (`std::thread::panicking()` is per thread, and other fibers would see
//! it): a blocking call in a destructor then returns a `Cancelled` error at
//! once.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;

use corosensei::{Coroutine, CoroutineResult};

use crate::rt::scheduler;
use crate::rt::stacks::Stack;
use crate::rt::task::Closure;
use crate::sys::fault::{self, FaultInfo};

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
    /// (To a fiber that tried to park while unwinding) you may not park: the
    /// blocking call fails with `Cancelled` instead. See [`Coro::resume`].
    Refused,
    /// (To a suspended fiber) record a backtrace of where you wait, then
    /// suspend again exactly as before: the fiber dump's view of a frozen
    /// stack (see [`Coro::capture`]).
    Capture,
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

/// How many parks in a row an unwinding fiber is refused (see
/// [`Coro::resume`]).
const REFUSALS: usize = 64;

/// The panic payload that unwinds a cancelled fiber. Raised with
/// `resume_unwind`, so no panic message is printed.
pub(crate) struct ForcedUnwind;

thread_local! {
    /// The running fiber's yielder; null while the scheduler (or a callback) runs.
    /// A fiber sets it each time it gains control, so it is always its own.
    static YIELDER: Cell<*const Yielder> = const { Cell::new(ptr::null()) };
    /// The backtrace a fiber resumed with `Resume::Capture` recorded.
    static CAPTURED: Cell<Option<std::backtrace::Backtrace>> = const { Cell::new(None) };
}

/// A coroutine that runs fibers' closures, one after another.
///
/// Creating a coroutine (stack from the pool, initial frame) and tearing it
/// down cost more than a fiber's whole life when the fiber is short, so a
/// coroutine whose closure has ended is not dropped: it waits at its root,
/// idle, and the loop hands it the next fiber's closure (`Resume::Run`).
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
                set_yielder(yielder);
                let job = match next {
                    Resume::Run => slots.start.take(),
                    Resume::Unwind | Resume::Retire | Resume::Refused | Resume::Capture => None,
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
    ///
    /// A fiber that suspends while it is unwinding (a destructor that blocks,
    /// during a panic or a cancellation) is resumed at once with
    /// `Resume::Refused`, before anything else runs: `std::thread::panicking()`
    /// is per thread, so every other fiber would see it true while this one
    /// waits (and a std `Mutex` it unlocked would come out poisoned). The
    /// check is made here, on the scheduler's side of the switch, where it
    /// costs the switch path least. After `REFUSALS` refusals in a row (code
    /// that retries a blocking call forever) the park is let through rather
    /// than spinning.
    #[inline]
    pub(crate) fn resume(
        &mut self,
        fault: &FaultInfo,
        how: Resume,
    ) -> CoroutineResult<Suspend, ()> {
        let mut result = self.switch(fault, how);
        let mut refusals = 0;
        while matches!(
            result,
            CoroutineResult::Yield(Suspend::Park | Suspend::Yield)
        ) && std::thread::panicking()
            && refusals < REFUSALS
        {
            refusals += 1;
            result = self.switch(fault, Resume::Refused);
        }
        result
    }

    #[inline]
    fn switch(&mut self, fault: &FaultInfo, how: Resume) -> CoroutineResult<Suspend, ()> {
        fault::set_running(fault);
        let result = self.0.coroutine.resume(how);
        fault::set_running(ptr::null());
        set_yielder(ptr::null());
        result
    }

    /// A backtrace of the suspended fiber, taken on its own stack: it is
    /// resumed with `Resume::Capture`, records where it waits and suspends
    /// again, unchanged (its wait goes on; nothing else of it runs). Works
    /// from the scheduler and from inside another fiber of the loop (the
    /// caller's yielder and fault info are restored afterwards).
    pub(crate) fn capture(&mut self, fault: &FaultInfo) -> Option<std::backtrace::Backtrace> {
        let outer_yielder = YIELDER.with(Cell::get);
        let outer_fault = fault::replace_running(fault);
        let result = self.0.coroutine.resume(Resume::Capture);
        fault::set_running(outer_fault);
        set_yielder(outer_yielder);
        debug_assert!(matches!(
            result,
            CoroutineResult::Yield(Suspend::Park | Suspend::Yield)
        ));
        CAPTURED.with(Cell::take)
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
        set_yielder(ptr::null());
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
                set_yielder(self.0);
            }
        }
    }
    let current = YIELDER.with(Cell::get);
    if !current.is_null() {
        set_yielder(ptr::null());
    }
    Restore(current)
}

/// Makes this thread count as outside any fiber for good: for the child of a
/// `fork` made from a fiber, whose one thread is a copy of the fiber's but
/// has no loop to switch to (the `hook` feature's `pthread_atfork` handler).
#[cfg(feature = "hook")]
pub(crate) fn forget_fiber_after_fork() {
    set_yielder(ptr::null());
}

/// True if the running fiber has been asked to cancel.
pub(crate) fn current_cancelled() -> bool {
    in_fiber()
        && scheduler::with_core(|core| {
            core.with_current(crate::rt::task::TaskCell::cancel_requested)
        })
        .flatten()
        .unwrap_or(false)
}

/// Records the running fiber's yielder (null: no fiber runs), and, with the
/// `hook` feature, the one-word flag its interposed calls test first.
#[inline(always)]
fn set_yielder(yielder: *const Yielder) {
    YIELDER.with(|y| y.set(yielder));
    #[cfg(feature = "hook")]
    crate::sys::fiber_flag::set(!yielder.is_null());
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
    set_yielder(yielder);
    resume
}

/// Records this fiber's backtrace for [`Coro::capture`] and suspends again
/// for the same `reason`, as often as it is asked; returns how the fiber is
/// resumed for real (never `Capture`). Called by the parking paths when
/// their `suspend` returned `Capture`: handling it there, as one more arm of
/// the `match` they make anyway, keeps the switch itself as it was (a test
/// here, after every switch, doubled the cost of a yield: docs/benchmarks.md).
#[cold]
#[inline(never)]
pub(crate) fn recapture(reason: Suspend) -> Resume {
    let yielder = YIELDER.with(Cell::get);
    loop {
        let backtrace = std::backtrace::Backtrace::force_capture();
        CAPTURED.with(|slot| slot.set(Some(backtrace)));
        // SAFETY: as in `suspend`: `yielder` is this running fiber's own.
        let resume = unsafe { &*yielder }.suspend(reason);
        set_yielder(yielder);
        if resume != Resume::Capture {
            return resume;
        }
    }
}
