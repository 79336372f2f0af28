//! The scheduler: one per thread, driving the ready queue, timers and reactor.
//!
//! ```text
//!            spawn / wake / call_soon                    other threads
//!                     |                                       |
//!                     v                                 remote queue (SegQueue)
//!   +-------------- ready queue (VecDeque) <---- drain ----+  + mio::Waker
//!   |                      |                               |
//!   |       pop: resume fiber / run callback               |
//!   |       (at most BUDGET, then look at I/O)             |
//!   |                      |                               |
//!   |                      v                               |
//!   |   poll(timeout) ---- timeout = 0 if work is ready,   |
//!   |        |             else until the next timer,      |
//!   |        |             else forever                    |
//!   |        v                                             |
//!   +-- wake I/O waiters, fire expired timers -------------+
//! ```
//!
//! `Core` is the loop's state; it lives in an `Rc` owned by the
//! [`EventLoop`](crate::EventLoop) and published in a thread-local while the
//! loop exists. `Shared` is the part other threads may touch: the remote queue,
//! the poller's waker and the mio registry.
//!
//! Ordering rules: `call_soon` callbacks and woken fibers run in FIFO order; a
//! newly spawned fiber is queued *ahead* of older work, in spawn order, and a
//! fiber parked in `join` resumes right after the fiber it joined finishes
//! (both as Go's `runnext`). That makes a spawn tree run depth-first, so only
//! the fibers on the current path hold stacks. Such "inherited" turns are
//! bounded: after `BUDGET` of them in a row, the oldest ordinary item runs
//! once, so a spawn-and-join loop cannot starve the rest.
//!
//! The parts: this file holds `Core` and the loop itself (`run`, `turn`);
//! `context` the installed loop and waking; `inject` what other threads hand
//! in; `queue` the ready-queue policy; `run_task` resuming one task; `idle`
//! the idle coroutines and stack reservations; `teardown` closing the loop;
//! `inspect` what the diagnostics (`rt::diag`) may see and the wait records
//! a parking task writes; `simulate` a simulation's idle turn and seeded
//! order (`rt::sim`). The loop calls into `rt::diag` at these points: with
//! the blocking detector on, each item and each turn bump the watchdog's
//! progress counter; with the scheduler trace on, each run, poll and timer
//! round is recorded, and each wake notes who queued the task (items in
//! `run_batch_slow`, a copy of the batch loop that a loop with neither, and
//! no simulation, never runs); before and after a sleep the deadlock and
//! stall checks run.

mod context;
mod gate;
mod group;
mod idle;
mod inject;
mod inspect;
mod metrics;
mod queue;
mod run_task;
mod simulate;
mod teardown;

pub(crate) use context::{
    core, install, join_on_same_loop, uninstall, wake_local, wake_task, with_core,
};
pub(crate) use group::Group;
use inject::Inbox;
pub(crate) use inject::{RemoteJob, Shared};
pub(crate) use inspect::{TaskState, TaskView};
use metrics::bump;
pub use metrics::LoopMetrics;
use run_task::run_callback;

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_queue::SegQueue;
use slab::Slab;

use crate::rt::coro::Coro;
use crate::rt::diag::Phase;
use crate::rt::reactor::{self, Reactor, WAKER_TOKEN};
use crate::rt::stacks as stack;
use crate::rt::task::{Body, TaskCell};
use crate::rt::timer::{TimerAction, Timers};

/// Ready items run between two looks at I/O and timers when work keeps coming
/// (tokio uses 61 for the same purpose).
const BUDGET: usize = 61;

/// How often the loop retries resuming a fiber that keeps blocking while it is
/// being cancelled before it gives up and leaks it.
const UNWIND_ATTEMPTS: usize = 64;

/// Something to run from the ready queue.
///
/// A task is named by its key in the live-task table, not by an `Arc`: the
/// table keeps every live task alive, a task is queued at most once (its
/// `queued` flag), and it leaves the table only after it ran for the last
/// time, so a queued key always names its task. This saves two atomic
/// reference-count operations per run (~6 ns each here).
pub(crate) enum Runnable {
    Task(usize),
    Call(Rc<CallbackCell>),
}

/// A `call_soon`/`call_later` callback; cancelling empties it.
pub(crate) struct CallbackCell {
    pub(crate) f: Cell<Option<Box<dyn FnOnce()>>>,
}

/// One loop's state. Lives on, and is touched only by, its own thread.
pub(crate) struct Core {
    /// Process-unique id of this loop (for handles that must not hold it).
    id: u64,
    shared: Arc<Shared>,
    ready: RefCell<VecDeque<Runnable>>,
    /// Where the next spawned fiber goes in `ready`; reset whenever a new item runs.
    spawn_at: Cell<usize>,
    /// The thread pool for blocking calls (`unblock`); shut down with the loop.
    pub(crate) blocking: crate::rt::pool::Pool,
    /// How many items at the head of `ready` were put there ahead of older
    /// work (spawned, or a joiner resumed); they inherit the current turn.
    inherited: Cell<usize>,
    /// Inherited items run in a row; at `BUDGET` an older item gets its turn.
    streak: Cell<usize>,
    /// Every live task: the loop's strong reference, for cancellation at the end.
    tasks: RefCell<Slab<Arc<TaskCell>>>,
    /// The task being resumed, valid only during `run_task` (which holds an Arc).
    current: Cell<Option<NonNull<TaskCell>>>,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) reactor: Reactor,
    /// Coroutines whose fiber ended, idle at their root, ready for the next
    /// fiber of the same stack size (most recently used last).
    idle: RefCell<Vec<Coro>>,
    /// This loop's share of the process-wide stack reservations.
    reservations: stack::Reservations,
    /// `stop()` was called; `run_forever` returns at its next check.
    stopping: Cell<bool>,
    /// The loop is being driven (guards against nested runs).
    running: Cell<bool>,
    /// The multi-loop runtime this loop belongs to, and its index there.
    group: OnceCell<(Arc<Group>, usize)>,
    /// The owner's end of this loop's deque of unadopted runtime tasks
    /// spawned by its own fibers: it takes the newest (depth first, as
    /// local spawns run), thieves take the oldest (`Shared::stealer`).
    deque: crossbeam_deque::Worker<Arc<TaskCell>>,
    /// Wait records' clock, the checks' state, the watchdog's view (`rt::diag`).
    pub(crate) diag: crate::rt::diag::Diag,
    /// The always-on counters behind [`LoopMetrics`].
    metrics: metrics::Counters,
}

/// Process-unique fiber ids, handed to each thread in blocks to avoid
/// contending on one counter.
fn next_id() -> u64 {
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
    const BLOCK: u64 = 1024;
    thread_local! {
        static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    IDS.with(|ids| {
        let (mut next, mut end) = ids.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
            end = next + BLOCK;
        }
        ids.set((next + 1, end));
        next
    })
}

impl Core {
    pub(crate) fn new() -> io::Result<Core> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let poller = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let deque = crossbeam_deque::Worker::new_lifo();
        let shared = Arc::new(Shared {
            remote: SegQueue::new(),
            released: SegQueue::new(),
            sleeping: AtomicBool::new(false),
            poller,
            registry,
            inbox: Mutex::new(Inbox {
                open: true,
                jobs: Vec::new(),
            }),
            inbox_ready: AtomicBool::new(false),
            closed: gate::Gate::new(),
            queue: SegQueue::new(),
            stealer: deque.stealer(),
            load: AtomicUsize::new(0),
            stolen: AtomicU64::new(0),
        });
        static NEXT_LOOP: AtomicU64 = AtomicU64::new(1);
        Ok(Core {
            id: NEXT_LOOP.fetch_add(1, Ordering::Relaxed),
            shared,
            ready: RefCell::new(VecDeque::with_capacity(256)),
            spawn_at: Cell::new(0),
            blocking: crate::rt::pool::Pool::new(),
            inherited: Cell::new(0),
            streak: Cell::new(0),
            tasks: RefCell::new(Slab::with_capacity(256)),
            current: Cell::new(None),
            timers: RefCell::new(Timers::default()),
            reactor: Reactor::new(poll),
            idle: RefCell::new(Vec::new()),
            reservations: stack::Reservations::default(),
            stopping: Cell::new(false),
            running: Cell::new(false),
            group: OnceCell::new(),
            deque,
            diag: crate::rt::diag::Diag::new(),
            metrics: metrics::Counters::new(),
        })
    }

    /// This loop's process-unique id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The key and id of the fiber being run, if any.
    pub(crate) fn current_key(&self) -> Option<(usize, u64)> {
        let task = self.current.get()?;
        // SAFETY: as in `current_task`: the pointee is alive while `current`
        // is set; we only read two plain fields.
        let task = unsafe { task.as_ref() };
        Some((task.local(self).key.get(), task.id))
    }

    /// A waker for the running fiber that borrows the live-task table's
    /// reference instead of taking one: waits use it without touching the
    /// reference count (clones, such as the one a socket keeps, count as usual).
    ///
    /// Valid for as long as the task stays in the table, which covers the
    /// whole of any wait its fiber performs: a task leaves the table only in
    /// `finish`, after its fiber's closure has returned.
    #[inline]
    pub(crate) fn current_waker(&self) -> Option<std::mem::ManuallyDrop<std::task::Waker>> {
        // The waker borrows the table's reference, alive as long as the task
        // is in the table; the caller uses it only inside its fiber's wait.
        self.with_current(crate::rt::task::waker_ref)
    }

    /// Runs `f` with the running task, if any.
    #[inline]
    pub(crate) fn with_current<R>(&self, f: impl FnOnce(&TaskCell) -> R) -> Option<R> {
        let task = self.current.get()?;
        // SAFETY: as in `current_task`: the pointee is alive while `current` is set.
        Some(f(unsafe { task.as_ref() }))
    }

    /// The fiber being run, if any.
    pub(crate) fn current_task(&self) -> Option<Arc<TaskCell>> {
        let task = self.current.get()?;
        // SAFETY: `current` is set only inside `run_task`/`cancel` around a
        // resume, and cleared before they return; both hold an `Arc<TaskCell>` for
        // that whole time, so the pointee is alive and this adds a reference.
        Some(unsafe {
            Arc::increment_strong_count(task.as_ptr());
            Arc::from_raw(task.as_ptr())
        })
    }

    /// Asks `run_forever` to return after the current batch.
    pub(crate) fn stop(&self) {
        self.stopping.set(true);
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.get()
    }

    /// Drives the loop until `done()` (checked after every item), or, when
    /// `honour_stop`, until `stop()` is called.
    pub(crate) fn run(&self, honour_stop: bool, done: &dyn Fn() -> bool) {
        assert!(
            !self.running.replace(true),
            "fiberloop: the event loop is already running (a loop cannot be run from inside itself)"
        );
        struct Running<'a>(&'a Cell<bool>);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _running = Running(&self.running);
        let _watched = self.diag.watched.get().map(|w| w.running());
        loop {
            if done() || (honour_stop && self.stopping.replace(false)) {
                return;
            }
            if self.diag.checks.found() {
                if !honour_stop {
                    return; // the caller raises the report
                }
                // A loop run forever goes on (its deadlocked tasks are
                // being cancelled); the report goes to stderr, and to the
                // runtime's `run`, which raises it.
                if let Some(report) = self.diag.checks.take_report() {
                    eprintln!("{report}");
                    self.publish_deadlock(report);
                }
            }
            // The watchdog's progress counter and the trace's records are
            // made only on the slow path: a loop with neither pays one
            // branch per batch.
            let finished = if self.diag.slow.get() {
                self.run_batch_slow(done)
            } else {
                self.run_batch(done)
            };
            if finished {
                return;
            }
            self.turn(honour_stop);
        }
    }

    /// Runs up to `BUDGET` ready items; true once `done()`.
    #[inline(always)]
    fn run_batch(&self, done: &dyn Fn() -> bool) -> bool {
        for _ in 0..BUDGET {
            let Some(next) = self.next_ready().or_else(|| self.adopt_newest()) else {
                break;
            };
            if self.run_item::<false>(next, done) {
                return true;
            }
        }
        false
    }

    /// [`run_batch`](Self::run_batch) for a loop the blocking detector
    /// watches or the scheduler trace records: each item bumps the
    /// watchdog's progress counter, and the trace records each run. Out of
    /// line, with its own copy of the item's run, so that the fast batch
    /// keeps its code.
    #[inline(never)]
    fn run_batch_slow(&self, done: &dyn Fn() -> bool) -> bool {
        let watched = self.diag.watched.get();
        let (simulated, seeded) = (crate::rt::sim::active(), crate::rt::sim::seeded());
        for _ in 0..BUDGET {
            let next = if seeded {
                self.next_ready_seeded()
            } else {
                self.next_ready()
            };
            let Some(next) = next.or_else(|| self.adopt_newest()) else {
                return false;
            };
            if let Some(watched) = watched {
                watched.progress();
            }
            if simulated {
                self.sim_ran(&next);
            }
            let finished = match self.diag.recorder() {
                None => self.run_item::<true>(next, done),
                Some(rec) => self.run_item_recorded(rec, next, done),
            };
            if finished {
                return true;
            }
        }
        if let Some(rec) = self.diag.recorder() {
            let ready = self.ready.borrow().len();
            if ready > 0 {
                rec.budget_cut(ready);
            }
        }
        false
    }

    /// [`run_item`](Self::run_item), recorded in the scheduler trace.
    #[inline(never)]
    fn run_item_recorded(
        &self,
        rec: &crate::rt::diag::Recorder,
        next: Runnable,
        done: &dyn Fn() -> bool,
    ) -> bool {
        let task = match &next {
            Runnable::Task(key) => self.tasks.borrow().get(*key).cloned(),
            Runnable::Call(_) => {
                let start = rec.begin_loop();
                let finished = rec.in_phase(Phase::Callback, || self.run_item::<true>(next, done));
                rec.end_callback(start);
                return finished;
            }
        };
        let Some(task) = task else {
            return self.run_item::<true>(next, done);
        };
        let local = task.local(self);
        let fiber = !matches!(&*local.body.borrow(), Body::Future(_));
        let wait = |local: &crate::rt::task::Local| local.wait.get(fiber).map(|w| w.on);
        rec.begin_task(&task, fiber, wait(local));
        let finished = self.run_item::<true>(next, done);
        rec.end_task(wait(local), local.queued.get());
        finished
    }

    /// Runs one ready item; true if the loop is `done()` after it. `SLOW`:
    /// the slow path's copy, which tells the trace how a task's run ended.
    #[inline(always)]
    fn run_item<const SLOW: bool>(&self, next: Runnable, done: &dyn Fn() -> bool) -> bool {
        self.spawn_at.set(0);
        // `done` can only turn true when a task finishes or a callback
        // runs, so a fiber that merely yielded or parked skips the check.
        let maybe_done = match next {
            Runnable::Task(key) => self.run_task::<SLOW>(key),
            Runnable::Call(callback) => {
                run_callback(&callback);
                true
            }
        };
        maybe_done && done()
    }

    /// One look at the outside world: remote wakes, I/O, timers.
    fn turn(&self, honour_stop: bool) {
        self.diag.progress();
        bump(&self.metrics.turns);
        self.diag.in_phase(Phase::Remote, || self.drain_remote());
        self.take_runtime_work();
        reactor::drain_released(self);
        let has_timers = self.timers.borrow().len() > 0;
        self.tick_clock(has_timers);
        let mut timeout = if !self.ready.borrow().is_empty() || (honour_stop && self.stopping.get())
        {
            Some(Duration::ZERO)
        } else {
            let next = self.timers.borrow_mut().next_deadline();
            next.map(|deadline| deadline.saturating_duration_since(self.diag.clock.get()))
        };
        if timeout != Some(Duration::ZERO) {
            self.shared.sleeping.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst); // pairs with `Shared::notify`
            if self.shared.has_remote_work() {
                timeout = Some(Duration::ZERO);
            }
        }
        // A simulation moves virtual time instead of sleeping, when it can.
        if timeout != Some(Duration::ZERO) && crate::rt::sim::active() {
            match self.sim_idle(timeout) {
                Ok(t) => timeout = t,
                Err(()) => {
                    self.shared.sleeping.store(false, Ordering::Relaxed);
                    return; // `run` ends at its next check, with the report
                }
            }
        }
        // About to sleep: the deadlock and stall checks (`rt::diag`) may
        // end the run or shorten the sleep.
        let mut stall_watch = false;
        if timeout != Some(Duration::ZERO) {
            let Some((shorter, watch)) = self.before_sleep(timeout) else {
                self.shared.sleeping.store(false, Ordering::Relaxed);
                return; // a deadlock: `run` ends at its next check
            };
            (timeout, stall_watch) = (shorter, watch);
        }
        // With work ready and no source registered there is nothing to poll
        // for: remote wakes arrive through the queue drained above and below.
        let mut events = 0;
        let asleep = (timeout != Some(Duration::ZERO)).then(Instant::now);
        let rec = self.diag.recorder();
        if let (Some(rec), Some(_)) = (rec, asleep) {
            rec.flush(); // the trace file is complete as of every sleep
        }
        if asleep.is_some() || self.reactor.len() > 0 {
            let start = rec.map(|rec| rec.begin_loop());
            events = self
                .diag
                .in_phase(Phase::Poll, || self.reactor.poll(timeout));
            if let (Some(rec), Some(start)) = (rec, start) {
                rec.end_poll(start, timeout, events);
            }
            bump(if events > 0 {
                &self.metrics.polls_with_events
            } else {
                &self.metrics.polls_empty
            });
        }
        self.shared.sleeping.store(false, Ordering::Relaxed);
        if let Some(asleep) = asleep {
            let now = Instant::now();
            let simulated = crate::rt::sim::active();
            self.diag.clock.set(if simulated {
                crate::rt::sim::now()
            } else {
                now
            });
            let idle = &self.metrics.idle;
            idle.set(idle.get() + now.saturating_duration_since(asleep));
        }
        self.diag.in_phase(Phase::Remote, || self.drain_remote());
        if stall_watch {
            self.after_quiet_sleep(events == 0 && self.ready.borrow().is_empty());
        }
        if self.timers.borrow().len() > 0 {
            let now = self.diag.clock.get();
            match rec {
                None => drop(self.fire_timers(now)),
                Some(rec) => {
                    let start = rec.begin_loop();
                    let fired = rec.in_phase(Phase::Timers, || self.fire_timers(now));
                    rec.end_timers(start, fired);
                }
            }
        }
    }

    /// Reads the clock for the wait records when the turn needs the time
    /// anyway (it has timers), and every `CLOCK_TURNS` turns otherwise.
    #[inline]
    fn tick_clock(&self, has_timers: bool) {
        let turns = self.diag.turns.get() + 1;
        if has_timers || turns >= crate::rt::diag::CLOCK_TURNS {
            self.diag.clock.set(crate::rt::sim::now());
            self.diag.turns.set(0);
        } else {
            self.diag.turns.set(turns);
        }
    }

    /// Takes in work from other threads: callbacks are queued like
    /// `call_soon`'s, tasks join the live-task table.
    fn drain_inbox(&self) {
        if !self.shared.inbox_ready.swap(false, Ordering::AcqRel) {
            return;
        }
        for job in self.shared.take_inbox(false) {
            self.take_job(job);
        }
    }

    fn take_job(&self, job: RemoteJob) {
        match job {
            RemoteJob::Call(f) => self.push_callback(Rc::new(CallbackCell {
                f: Cell::new(Some(f)),
            })),
            RemoteJob::Adopt(task) => self.adopt(task),
        }
    }

    /// Closes the inbox: later `RemoteHandle` calls fail. Tasks already handed
    /// in are adopted (so that closing cancels them and their joiners wake);
    /// callbacks are dropped, as asyncio drops them on close.
    pub(crate) fn close_inbox(&self) {
        let jobs = self.shared.take_inbox(true);
        for job in jobs {
            if let RemoteJob::Adopt(_) = job {
                self.take_job(job);
            }
        }
        // Runtime tasks queued here and not stolen: cancelled with the rest.
        while let Some(task) = self.shared.queue.pop().or_else(|| self.deque.pop()) {
            self.adopt(task);
        }
    }

    fn drain_remote(&self) {
        self.drain_inbox();
        while let Some(task) = self.shared.remote.pop() {
            bump(&self.metrics.wakes_remote);
            task.remote_queued.store(false, Ordering::Release);
            self.schedule(task);
        }
    }

    /// Fires the timers due at `now`; returns how many.
    fn fire_timers(&self, now: Instant) -> usize {
        let mut fired = 0;
        loop {
            let action = self.timers.borrow_mut().pop_expired(now);
            match action {
                None => return fired,
                Some(TimerAction::Wake(waker)) => waker.wake(),
                Some(TimerAction::Call(callback)) => self.push_callback(callback),
            }
            fired += 1;
        }
    }
}
