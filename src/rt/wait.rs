//! The one waiting mechanism: every blocking call in fiberloop ends here.
//!
//! A blocking operation is written once, as a poll function in the style of
//! `Future::poll`: it either finishes or registers the [`Waker`] it is given
//! and says `Pending`. [`block_on`] then parks whatever is calling:
//!
//! - in a fiber, the waker re-queues the fiber, and the fiber is suspended
//!   (the thread goes on running other fibers);
//! - on a plain thread with no event loop, the waker unparks the thread, and
//!   the thread sleeps in `std::thread::park`;
//! - on a thread whose loop is running but outside any fiber (a `call_soon`
//!   callback), blocking would stall every fiber, so it panics with a message
//!   saying so (the loop reports the panicking callback and carries on).
//!
//! Because the same poll functions take any waker, the `async` faces of the same
//! primitives come for free: their futures call the same poll functions.

use std::io;
use std::panic;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

use crate::rt::coro::{self as fiber, ForcedUnwind, Resume, Suspend};
pub(crate) use crate::rt::diag::WaitOn;
use crate::rt::scheduler::{self, Core};
use crate::rt::timer::{TimerAction, TimerKey};

/// Why a blocking call ended without its result: the deadline passed (its
/// own timeout, or an enclosing [`timeout`](crate::timeout) scope), or the
/// fiber is unwinding and may not park. Converts to an `io::Error` (`TimedOut`, or `Other`
/// wrapping [`Cancelled`](crate::Cancelled)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed.
    TimedOut,
    /// The fiber is unwinding (from a panic, or from a cancellation) and
    /// blocked in a destructor: an unwinding fiber never parks, so the call
    /// fails at once. (A cancellation that reaches a fiber *waiting* unwinds
    /// it instead: see [`JoinHandle::cancel`](crate::JoinHandle::cancel).)
    Cancelled,
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WaitError::TimedOut => "timed out",
            WaitError::Cancelled => "fiber cancelled",
        })
    }
}

impl std::error::Error for WaitError {}

impl From<WaitError> for io::Error {
    fn from(e: WaitError) -> io::Error {
        match e {
            WaitError::TimedOut => io::Error::new(io::ErrorKind::TimedOut, "operation timed out"),
            WaitError::Cancelled => io::Error::other(crate::Cancelled),
        }
    }
}

/// Suspends the calling fiber. When the loop resumes it to be cancelled, this
/// raises the private [`ForcedUnwind`] payload, which unwinds the fiber's
/// stack (running its destructors) to its root.
///
/// A fiber that is unwinding (a panic, or a cancellation) is not left
/// suspended: the scheduler resumes it at once with `Resume::Refused` (see
/// `Coro::resume`), and its blocking call returns `Cancelled`.
#[inline(always)] // the stack switch stays in the caller's frame (docs/benchmarks.md)
pub(crate) fn park(reason: Suspend) -> Result<(), WaitError> {
    match fiber::suspend(reason) {
        Resume::Run => Ok(()),
        Resume::Refused => Err(WaitError::Cancelled),
        Resume::Unwind => panic::resume_unwind(Box::new(ForcedUnwind)),
        Resume::Capture => park_after_capture(reason),
        Resume::Retire => unreachable!("fiberloop: Retire goes only to idle coroutines"),
    }
}

/// The rest of a park whose fiber was resumed only for its backtrace (the
/// fiber dump): it records it, suspends again, and carries on from there.
#[cold]
#[inline(never)]
fn park_after_capture(reason: Suspend) -> Result<(), WaitError> {
    resumed(fiber::recapture(reason))
}

/// What a park's `Resume` means for the wait: carry on, fail with
/// `Cancelled` (refused while unwinding), or unwind (cancelled). For a
/// resume that is not `Capture` (see [`park`]).
#[inline(always)]
pub(crate) fn resumed(resume: Resume) -> Result<(), WaitError> {
    match resume {
        Resume::Run => Ok(()),
        Resume::Refused => Err(WaitError::Cancelled),
        Resume::Unwind => panic::resume_unwind(Box::new(ForcedUnwind)),
        Resume::Retire | Resume::Capture => {
            unreachable!("fiberloop: Retire goes only to idle coroutines, Capture is handled first")
        }
    }
}

/// Suspends the calling fiber in a wait that cancellation must not abandon
/// (see [`block_on_shielded`]): the loop resumes it as usual when it is
/// cancelled, and only the end of the loop interrupts it.
fn suspend_shielded(core: &Core) -> Resume {
    let shield = |on| core.with_current(|task| task.local(core).shielded.set(on));
    shield(true);
    let resumed = fiber::suspend(Suspend::Park);
    shield(false);
    resumed
}

/// The loop of the calling fiber, or `None` on a plain thread.
///
/// # Panics
/// On a loop thread outside any fiber (see the module docs).
#[inline]
pub(crate) fn fiber_core() -> Option<Rc<Core>> {
    if fiber::in_fiber() {
        return scheduler::core();
    }
    if scheduler::with_core(|_| ()).is_some() {
        panic!(
            "fiberloop: blocking call outside a fiber on a thread that has an event loop \
             (in a call_soon/call_later callback, an async task or a generator's body): \
             it would stall every fiber. Spawn a fiber for blocking work."
        );
    }
    None
}

/// Waits for a future from blocking-style code: in a fiber this parks only the
/// fiber (the loop runs on, and drives the future's I/O and timers if they are
/// fiberloop's); on a plain thread it blocks the thread. This is the bridge
/// from the stackful model to the stackless one: runtime-agnostic async
/// libraries can be used from fibers.
///
/// ```
/// use std::time::Duration;
///
/// fiberloop::run(|| {
///     let answer = fiberloop::wait(async {
///         fiberloop::time::sleep(Duration::from_millis(5)).await;
///         42
///     });
///     assert_eq!(answer, Ok(42));
/// });
/// ```
///
/// # Errors
/// [`Cancelled`](crate::Cancelled) when called while the fiber is unwinding
/// (a blocking call in a destructor during a panic or a cancellation): an
/// unwinding fiber never parks. A cancellation that arrives during the wait
/// unwinds the fiber instead (the future is dropped unfinished).
///
/// # Panics
/// On a loop thread outside any fiber (in a `call_soon` callback, or in an
/// async task: there, `.await` the future instead).
pub fn wait<F: std::future::Future>(future: F) -> Result<F::Output, crate::Cancelled> {
    let mut future = std::pin::pin!(future);
    block_on(None, WaitOn::Future, |cx| future.as_mut().poll(cx)).map_err(|_| crate::Cancelled)
}

/// Polls `poll` until it is ready, parking the caller in between, or until
/// `deadline` passes. A fiber that parks records `on` (what it waits for)
/// for the dump and the deadlock check.
#[inline(always)] // the stack switch stays in the caller's frame (docs/benchmarks.md)
pub(crate) fn block_on<T>(
    deadline: Option<Instant>,
    on: WaitOn,
    poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
) -> Result<T, WaitError> {
    block_on_with(deadline, on, true, poll)
}

/// Like [`block_on`], but neither cancellation nor timeout scopes interrupt
/// it; only the end of the loop does, with an error. For waits that must not
/// be abandoned, like a scope waiting for fibers that borrow from its stack
/// (the caller sees the cancellation with `fiber::current_cancelled`).
pub(crate) fn block_on_shielded<T>(
    on: WaitOn,
    poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
) -> Result<T, WaitError> {
    block_on_with(None, on, false, poll)
}

thread_local! {
    /// The nearest deadline of the `timeout` scopes a plain thread is in.
    static THREAD_DEADLINE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Sets the calling fiber's (or plain thread's) timeout-scope deadline;
/// returns the previous one.
pub(crate) fn replace_scope_deadline(deadline: Option<Instant>) -> Option<Instant> {
    if fiber::in_fiber() {
        if let Some(previous) = scheduler::with_core(|core| {
            core.with_current(|task| task.local(core).deadline.replace(deadline))
        })
        .flatten()
        {
            return previous;
        }
    }
    THREAD_DEADLINE.with(|d| d.replace(deadline))
}

/// The nearer of two optional deadlines.
#[inline(always)]
fn nearest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[inline(always)] // the stack switch stays in the caller's frame (docs/benchmarks.md)
fn block_on_with<T>(
    deadline: Option<Instant>,
    on: WaitOn,
    interruptible: bool,
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
) -> Result<T, WaitError> {
    // One inlined copy of the fiber's wait, reached without a closure, so
    // that the stack switch stays in the caller's frame.
    match fiber_core() {
        Some(core) => block_on_fiber(&core, deadline, on, interruptible, poll),
        None => {
            let scope = if interruptible {
                THREAD_DEADLINE.with(std::cell::Cell::get)
            } else {
                None
            };
            let deadline = nearest(deadline, scope);
            let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
            let mut cx = Context::from_waker(&waker);
            loop {
                if let Poll::Ready(value) = poll(&mut cx) {
                    return Ok(value);
                }
                match deadline {
                    None => thread::park(),
                    Some(deadline) => {
                        let now = Instant::now();
                        if now >= deadline {
                            return Err(WaitError::TimedOut);
                        }
                        thread::park_timeout(deadline - now);
                    }
                }
            }
        }
    }
}

#[inline(always)] // the stack switch stays in the caller's frame (docs/benchmarks.md)
fn block_on_fiber<T>(
    core: &Core,
    deadline: Option<Instant>,
    on: WaitOn,
    interruptible: bool,
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
) -> Result<T, WaitError> {
    let waker = core.current_waker().expect("a running fiber has a task");
    let mut cx = Context::from_waker(&waker);
    // The nearest of the call's own deadline and the fiber's timeout scopes.
    let scope = if interruptible {
        core.with_current(|t| t.local(core).deadline.get())
            .flatten()
    } else {
        None
    };
    let deadline = nearest(deadline, scope);
    let mut timer = None;
    loop {
        if let Poll::Ready(value) = poll(&mut cx) {
            return Ok(value);
        }
        if let Some(deadline) = deadline {
            if crate::rt::sim::now() >= deadline {
                return Err(WaitError::TimedOut);
            }
            // Set the timer only once we know we must wait.
            timer.get_or_insert_with(|| TimerGuard::new(core, deadline, &waker));
        }
        // The record is cleared before anything else happens after the
        // switch, unwinding included: it may point into what `poll` borrows.
        core.begin_wait(on, deadline);
        let resumed = if interruptible {
            fiber::suspend(Suspend::Park)
        } else {
            suspend_shielded(core)
        };
        core.end_wait(on);
        match resumed {
            Resume::Run => {}
            Resume::Refused => return Err(WaitError::Cancelled),
            Resume::Unwind if interruptible => panic::resume_unwind(Box::new(ForcedUnwind)),
            Resume::Unwind => return Err(WaitError::Cancelled),
            Resume::Capture => wait_after_capture(core, on, deadline, interruptible)?,
            Resume::Retire => unreachable!("fiberloop: Retire goes only to idle coroutines"),
        }
    }
}

/// The rest of a wait whose fiber was resumed only for its backtrace (the
/// fiber dump): it records it and waits again, as before, without polling
/// (nothing of the fiber's own may run inside the dump). Out of line, so
/// that the common path of every wait is one more arm of its `match`.
#[cold]
#[inline(never)]
fn wait_after_capture(
    core: &Core,
    on: WaitOn,
    until: Option<Instant>,
    interruptible: bool,
) -> Result<(), WaitError> {
    let shield = |on| core.with_current(|task| task.local(core).shielded.set(on));
    core.begin_wait(on, until);
    if !interruptible {
        shield(true);
    }
    let resumed = fiber::recapture(Suspend::Park);
    if !interruptible {
        shield(false);
    }
    core.end_wait(on);
    match resumed {
        Resume::Run => Ok(()),
        Resume::Refused => Err(WaitError::Cancelled),
        Resume::Unwind if interruptible => panic::resume_unwind(Box::new(ForcedUnwind)),
        Resume::Unwind => Err(WaitError::Cancelled),
        Resume::Capture | Resume::Retire => {
            unreachable!("fiberloop: recapture returns a real resume, never Retire")
        }
    }
}

/// A timer that wakes a waiter at its deadline; cancelled when the wait ends
/// any other way, so no timer outlives its wait.
struct TimerGuard<'a> {
    core: &'a Core,
    key: TimerKey,
}

impl<'a> TimerGuard<'a> {
    fn new(core: &'a Core, deadline: Instant, waker: &Waker) -> TimerGuard<'a> {
        let key = core
            .timers
            .borrow_mut()
            .insert(deadline, TimerAction::Wake(waker.clone()));
        TimerGuard { core, key }
    }
}

impl Drop for TimerGuard<'_> {
    fn drop(&mut self) {
        let action = self.core.timers.borrow_mut().cancel(self.key);
        drop(action); // outside the borrow: dropping a waker may run code
    }
}

/// Wakes a plain thread blocked in [`block_on`].
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}
