//! Fibers: the `std::thread`-like API to spawn them ([`spawn`], [`Builder`]),
//! and the calls a fiber makes on itself ([`yield_now`], [`sleep`],
//! [`current`]). The coroutine under each fiber is `rt::coro`.

use std::io;
use std::panic;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::rt::coro::{in_fiber, Suspend};
use crate::rt::scheduler;
use crate::rt::wait;
use crate::stack;
use crate::task::{Fiber, JoinHandle};

/// Installs, once per process, a panic hook that names the fiber a panic
/// happens in: `thread 'main' fiber #3 'conn' panicked at src/main.rs:9:5:`,
/// where std's own hook can only name the thread, and after the message says
/// where the fiber was spawned (`note: fiber #3 'conn' was spawned at ..`). Outside fibers it hands
/// over to the hook that was there before. A hook set later replaces it.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| match running_fiber_label() {
            Some((label, spawned)) => report_fiber_panic(&label, spawned, info),
            None => previous(info),
        }));
    });
}

/// `fiber #3 'conn'` (or `fiber #3`) for the running fiber, if any, with
/// where it was spawned.
fn running_fiber_label() -> Option<(String, &'static panic::Location<'static>)> {
    if !in_fiber() {
        return None;
    }
    let task = scheduler::with_core(|core| core.current_task()).flatten()?;
    let label = match &task.name {
        Some(name) => format!("fiber #{} '{name}'", task.id),
        None => format!("fiber #{}", task.id),
    };
    Some((label, task.location))
}

/// Prints a panic the way std's default hook does, with the fiber named and
/// where it was spawned.
fn report_fiber_panic(label: &str, spawned: &panic::Location<'_>, info: &panic::PanicHookInfo<'_>) {
    use std::backtrace::{Backtrace, BacktraceStatus};
    use std::sync::atomic::{AtomicBool, Ordering};
    static NOTED: AtomicBool = AtomicBool::new(false);
    let thread = std::thread::current();
    let payload = info.payload();
    let message = crate::rt::task::payload_message(payload).unwrap_or("Box<dyn Any>");
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
        "thread '{}' {label} panicked{location}:\n{message}\n\
         note: {label} was spawned at {spawned}\n{tail}",
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
    #[track_caller] // the spawn location (`Fiber::spawn_location`)
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let stack_size = self.stack_size.unwrap_or(stack::DEFAULT_STACK_SIZE);
        let closure = crate::task::closure(f);
        let name = self.name.map(Arc::from);
        let location = panic::Location::caller();
        let task = scheduler::with_core(|core| core.spawn(closure, name, stack_size, location))
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
#[track_caller]
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
///
/// The exact rule: the fiber goes to the back of the ready queue, behind
/// everything ready when it yielded. One exception bounds that wait:
/// freshly spawned tasks that have not run yet (and joiners resumed by a
/// finishing task) are queued *ahead* of older work, and such turns run at
/// most 61 in a row (the yielder's own counts if it was one) before the
/// oldest waiting item gets one. So behind 200 fibers that have run before,
/// a yield waits for all 200; behind 200 fresh spawns, for about 60 of them
/// (`tests/yield_order.rs`).
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
/// like asyncio's `sleep(0)`, and every other sleep lets the ready fibers run
/// at least once too (see [`sleep_until`]).
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
///
/// Like every sleep, it gives the other ready fibers a turn even when
/// `deadline` has already passed (it was in the past, or the thread was
/// preempted between computing it and parking), as Go's `time.Sleep` and
/// gevent's `sleep` do: code that sleeps to let others run can count on it.
pub fn sleep_until(deadline: Instant) {
    let mut looks = 0u32;
    let _ = wait::block_on(Some(deadline), wait::WaitOn::Sleep, |_| {
        looks += 1;
        std::task::Poll::<()>::Pending
    });
    // One look means the wait ended before it ever parked.
    if looks == 1 {
        yield_now();
    }
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
