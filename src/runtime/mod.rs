//! The public face of a loop: [`run`], [`EventLoop`], and the asyncio-style
//! calls on a [`Handle`] (`call_soon`, `call_later`, `call_at`, `time`, `stop`);
//! and of several: [`Runtime`], one loop per thread, with its [`Builder`]
//! and [`RuntimeHandle`].
//!
//! A loop belongs to the thread that created it; [`EventLoop`] and [`Handle`]
//! are `!Send`, which the compiler checks:
//!
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<fiberloop::EventLoop>();
//! ```
//!
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<fiberloop::Handle>();
//! ```

mod builder;
mod multi;
pub use crate::rt::scheduler::LoopMetrics;
pub use builder::LoopBuilder;
pub use multi::{Builder, LoopStats, Runtime, RuntimeHandle};

use std::cell::Cell;
use std::fmt;
use std::io;
use std::panic;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use std::future::Future;

use crate::rt::scheduler::{self, CallbackCell, Core};
use crate::rt::timer::{TimerAction, TimerKey};
use crate::task::JoinHandle;

/// Usable stack of the main fiber that [`run`] and
/// [`EventLoop::run_until_complete`] create: 256 KiB, more than other fibers
/// get by default because `main`-like code tends to hold more on its stack.
pub const MAIN_STACK_SIZE: usize = 256 * 1024;

/// Runs `f` as the main fiber of a new event loop on this thread and drives the
/// loop until `f` returns; returns what `f` returns.
///
/// Fibers still alive when `f` returns are cancelled before `run` returns: a
/// fiber that never started is dropped with its closure; a suspended fiber is
/// resumed one last time and its blocking call unwinds its stack, so its
/// destructors run. (A blocking call made *by* a destructor during that unwind
/// returns a `Cancelled` error instead of blocking.) Pending callbacks and
/// timers are dropped without running.
///
/// If `f` panics, the panic is re-raised here, after the cleanup above.
///
/// # Panics
/// If this thread already runs a loop, or the loop cannot be created.
///
/// ```
/// let total = fiberloop::run(|| {
///     let handles: Vec<_> = (1..=3).map(|i| fiberloop::spawn(move || i * 10)).collect();
///     handles.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
/// });
/// assert_eq!(total, 60);
/// ```
#[track_caller] // the main fiber's spawn location
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    let event_loop = EventLoop::new().unwrap_or_else(|e| panic!("fiberloop::run: {e}"));
    event_loop.run_until_complete(f)
}

/// Runs `future` as the main task of a new event loop on this thread and drives
/// the loop until it completes; the async twin of [`run`] (same cleanup rules).
///
/// ```
/// let n = fiberloop::block_on(async {
///     let t = fiberloop::task::spawn(async { 20 });
///     t.await.unwrap() + 22
/// });
/// assert_eq!(n, 42);
/// ```
///
/// # Panics
/// If this thread already runs a loop, or the loop cannot be created. A panic
/// in `future` is re-raised here.
#[track_caller]
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    let event_loop = EventLoop::new().unwrap_or_else(|e| panic!("fiberloop::block_on: {e}"));
    event_loop.block_on(future)
}

/// An event loop bound to the calling thread. Dropping it cancels the fibers
/// still alive (see [`run`]).
pub struct EventLoop {
    core: Rc<Core>,
}

impl EventLoop {
    /// Creates this thread's event loop.
    ///
    /// # Errors
    /// `AlreadyExists` if the thread has a loop already (one per thread);
    /// otherwise what creating the poller (`epoll`/`kqueue`) returned.
    pub fn new() -> io::Result<EventLoop> {
        LoopBuilder::new().build()
    }

    /// A [`LoopBuilder`], to choose the loop's diagnostics in code.
    pub fn builder() -> LoopBuilder {
        LoopBuilder::new()
    }

    /// Keeps an async task that dumps the loop to stderr on each `SIGQUIT`.
    fn dump_on_sigquit(&self) -> io::Result<()> {
        let signals = crate::signal::Signals::new(&[libc::SIGQUIT])?;
        let handle = self.handle();
        let watcher = crate::task::boxed_future(async move {
            while signals.recv_async().await.is_ok() {
                eprint!("{}", handle.dump());
            }
        });
        drop(
            self.core
                .spawn_future(watcher, std::panic::Location::caller()),
        );
        Ok(())
    }

    /// A handle for other threads: `call_soon_threadsafe` and spawning.
    pub fn remote(&self) -> crate::RemoteHandle {
        crate::RemoteHandle::new(self.core.shared().clone())
    }

    /// A handle for scheduling callbacks on this loop.
    pub fn handle(&self) -> Handle {
        Handle {
            core: self.core.clone(),
        }
    }

    /// Runs `f` as a fiber and drives the loop until it returns (other fibers
    /// run meanwhile and stay alive afterwards). [`Handle::stop`] does not end
    /// this call. A panic in `f` is re-raised here.
    ///
    /// # Panics
    /// If the loop is already running (called from one of its fibers).
    #[track_caller]
    pub fn run_until_complete<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let closure = crate::task::closure(f);
        let task = self
            .core
            .spawn(
                closure,
                Some("main".into()),
                MAIN_STACK_SIZE,
                std::panic::Location::caller(),
            )
            .unwrap_or_else(|e| panic!("fiberloop: cannot start the main fiber: {e}"));
        let main = JoinHandle::<T>::new(task);
        self.core.run(false, &|| main.is_finished());
        self.raise_deadlock();
        unwrap_main(main)
    }

    /// Runs `future` as an async task and drives the loop until it completes
    /// (asyncio's `run_until_complete` for a coroutine). A panic in it is
    /// re-raised here.
    ///
    /// # Panics
    /// If the loop is already running.
    #[track_caller]
    pub fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let future = crate::task::boxed_future(future);
        let location = std::panic::Location::caller();
        let main = JoinHandle::<F::Output>::new(self.core.spawn_future(future, location));
        self.core.run(false, &|| main.is_finished());
        self.raise_deadlock();
        unwrap_main(main)
    }

    /// Ends a run that stopped on a deadlock the way Go ends the program:
    /// the caller panics with the report (the wait-for cycle, then the dump).
    fn raise_deadlock(&self) {
        if let Some(report) = self.core.diag.checks.take_report() {
            panic!("{report}");
        }
    }

    /// Bounds the threads of this loop's pool for blocking calls
    /// ([`unblock`](crate::unblock)); see [`Handle::set_max_blocking_threads`].
    pub fn set_max_blocking_threads(&self, max: usize) {
        self.core.blocking.set_max_threads(max);
    }

    /// Drives the loop until [`Handle::stop`] is called (asyncio's
    /// `run_forever`). Fibers alive at that point stay suspended and carry on
    /// at the next run.
    ///
    /// # Panics
    /// If the loop is already running.
    pub fn run_forever(&self) {
        self.core.run(true, &|| false);
    }
}

/// The value of a finished main task, or its panic re-raised.
fn unwrap_main<T: 'static>(main: JoinHandle<T>) -> T {
    match main.join() {
        Ok(value) => value,
        Err(e) if e.is_panic() => panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("fiberloop: the main task did not finish: {e}"),
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.core.close_inbox();
        self.core.cancel_all();
        self.core.diag.close_trace();
        self.core.shared().close_remote();
        self.core.reactor.close();
        self.core.blocking.shutdown();
        scheduler::uninstall();
        if crate::rt::sim::active() {
            crate::rt::sim::stop(); // this thread's loop was the simulation
        }
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("fibers", &self.core.task_count())
            .field("sources", &self.core.reactor.len())
            .field("timers", &self.core.timers.borrow().len())
            .finish()
    }
}

/// A handle to the running loop of this thread, like asyncio's
/// `get_running_loop()`.
///
/// # Panics
/// If the thread has no event loop; see [`try_handle`].
pub fn handle() -> Handle {
    try_handle().expect("fiberloop::handle called on a thread without an event loop")
}

/// A handle to this thread's loop, or `None` if it has none.
pub fn try_handle() -> Option<Handle> {
    scheduler::core().map(|core| Handle { core })
}

/// A cheap, cloneable reference to a loop, for scheduling callbacks and
/// stopping it. Same-thread only; a cross-thread handle is separate work.
#[derive(Clone)]
pub struct Handle {
    core: Rc<Core>,
}

impl Handle {
    /// Runs `f` on the loop as soon as possible, after the callbacks and fibers
    /// already queued (FIFO). Callbacks run on the loop's own stack, not in a
    /// fiber: they must not block (a blocking call panics with an explanation;
    /// the loop reports the panic and carries on).
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> CallbackHandle {
        let cell = Rc::new(CallbackCell {
            f: Cell::new(Some(Box::new(f))),
        });
        self.core.push_callback(cell.clone());
        CallbackHandle { cell, timer: None }
    }

    /// Runs `f` once `delay` has passed.
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> CallbackHandle {
        let when = crate::time::deadline_after(delay);
        self.call_at(when, f)
    }

    /// Runs `f` once the clock reaches `when` ([`time`](Self::time) is that
    /// clock). Callbacks due at the same instant run in the order they were set.
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> CallbackHandle {
        let cell = Rc::new(CallbackCell {
            f: Cell::new(Some(Box::new(f))),
        });
        let key = self
            .core
            .timers
            .borrow_mut()
            .insert(when, TimerAction::Call(cell.clone()));
        CallbackHandle {
            cell,
            timer: Some(Timer {
                core: Rc::downgrade(&self.core),
                key,
                when,
            }),
        }
    }

    /// The loop's clock (monotonic), the one `call_at` deadlines refer to:
    /// `Instant::now()`, or in a simulation the virtual time
    /// ([`sim::now`](crate::sim::now)).
    pub fn time(&self) -> Instant {
        crate::rt::sim::now()
    }

    /// Makes [`EventLoop::run_forever`] return once the callbacks and fibers
    /// already running in this round have had their turn.
    pub fn stop(&self) {
        self.core.stop();
    }

    /// Bounds the threads of this loop's pool for blocking calls
    /// ([`unblock`](crate::unblock), host-name lookups): at most `max` run at
    /// once (at least one), later calls queue in FIFO order. The default is
    /// [`blocking::DEFAULT_MAX_THREADS`](crate::blocking::DEFAULT_MAX_THREADS).
    pub fn set_max_blocking_threads(&self, max: usize) {
        self.core.blocking.set_max_threads(max);
    }

    /// A snapshot of the loop as text: every fiber and async task with its
    /// id, name, state (running, ready, parked), what it waits on and for
    /// how long, where it was spawned, and each fiber's backtrace (a parked
    /// fiber's is taken on its own stack). See `docs/diagnostics.md`.
    ///
    /// ```
    /// fiberloop::run(|| {
    ///     let (tx, rx) = fiberloop::sync::bounded::<u8>(1);
    ///     let waiter = fiberloop::Builder::new()
    ///         .name("waiter")
    ///         .spawn(move || rx.recv())
    ///         .unwrap();
    ///     fiberloop::yield_now(); // the waiter runs and parks in recv
    ///     let dump = fiberloop::handle().dump();
    ///     assert!(dump.contains("fiber #"), "{dump}");
    ///     assert!(dump.contains("'waiter': parked for"), "{dump}");
    ///     assert!(dump.contains("on recv from channel"), "{dump}");
    ///     tx.send(1).unwrap();
    ///     waiter.join().unwrap().unwrap();
    /// });
    /// ```
    pub fn dump(&self) -> String {
        self.core.dump(true)
    }

    /// The loop's metrics now: turns, polls with and without events, tasks
    /// spawned and finished, wakes, ready-queue depth, busy time, live
    /// stacks and the `vm.max_map_count` headroom ([`LoopMetrics`]).
    ///
    /// ```
    /// fiberloop::run(|| {
    ///     let before = fiberloop::handle().metrics();
    ///     fiberloop::spawn(|| fiberloop::sleep(std::time::Duration::from_millis(1)))
    ///         .join()
    ///         .unwrap();
    ///     let after = fiberloop::handle().metrics();
    ///     assert_eq!(after.tasks_finished - before.tasks_finished, 1);
    ///     assert!(after.wakes_local > before.wakes_local);
    /// });
    /// ```
    pub fn metrics(&self) -> LoopMetrics {
        self.core.metrics()
    }

    /// A handle for other threads (see [`RemoteHandle`](crate::RemoteHandle)).
    pub fn remote(&self) -> crate::RemoteHandle {
        crate::RemoteHandle::new(self.core.shared().clone())
    }

    /// True while the loop is being driven.
    pub fn is_running(&self) -> bool {
        self.core.is_running()
    }

    /// Spawns a fiber on this loop (see [`spawn`](crate::spawn)).
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        crate::spawn(f)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("running", &self.core.is_running())
            .finish()
    }
}

/// A scheduled callback, returned by `call_soon`, `call_later` and `call_at`.
/// Dropping it does not cancel the callback; [`cancel`](Self::cancel) does.
pub struct CallbackHandle {
    cell: Rc<CallbackCell>,
    timer: Option<Timer>,
}

struct Timer {
    core: Weak<Core>,
    key: TimerKey,
    when: Instant,
}

impl CallbackHandle {
    /// Cancels the callback if it has not run yet, dropping its closure (and
    /// its timer) now. Cancelling twice, or after it ran, does nothing.
    pub fn cancel(&self) {
        let f = self.cell.f.take();
        drop(f);
        if let Some(timer) = &self.timer {
            if let Some(core) = timer.core.upgrade() {
                let action = core.timers.borrow_mut().cancel(timer.key);
                drop(action);
            }
        }
    }

    /// True if the callback has neither run nor been cancelled.
    pub fn is_pending(&self) -> bool {
        let f = self.cell.f.take();
        let pending = f.is_some();
        self.cell.f.set(f);
        pending
    }

    /// When a `call_later`/`call_at` callback is due; `None` for `call_soon`.
    pub fn when(&self) -> Option<Instant> {
        self.timer.as_ref().map(|t| t.when)
    }
}

impl fmt::Debug for CallbackHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackHandle")
            .field("pending", &self.is_pending())
            .field("when", &self.when())
            .finish()
    }
}
