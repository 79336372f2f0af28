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

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::mem;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corosensei::CoroutineResult;
use crossbeam_queue::SegQueue;
use slab::Slab;

use crate::rt::coro::{Coro, Exit, ForcedUnwind, Resume, Suspend};
use crate::rt::reactor::{self, Reactor, WAKER_TOKEN};
use crate::rt::stacks as stack;
use crate::rt::task::{Body, BoxFuture, Closure, JoinError, Output, TaskCell};
use crate::rt::timer::{TimerAction, Timers};

/// Ready items run between two looks at I/O and timers when work keeps coming
/// (tokio uses 61 for the same purpose).
const BUDGET: usize = 61;

/// How often the loop retries resuming a fiber that keeps blocking while it is
/// being cancelled before it gives up and leaks it.
const UNWIND_ATTEMPTS: usize = 64;

/// The thread-safe half of a loop.
pub(crate) struct Shared {
    /// Tasks woken from other threads.
    remote: SegQueue<Arc<TaskCell>>,
    /// Tokens of sources deregistered (from any thread) whose slot awaits release.
    pub(crate) released: SegQueue<usize>,
    /// True while the loop is (about to be) blocked in `poll`.
    sleeping: AtomicBool,
    /// Interrupts `poll` when a remote wake arrives.
    poller: mio::Waker,
    /// For registering and deregistering sources from any thread.
    pub(crate) registry: mio::Registry,
    /// Work handed in from other threads (`RemoteHandle`).
    inbox: Mutex<Inbox>,
    /// Set after a push to `inbox`, so the loop need not lock it to look.
    inbox_ready: AtomicBool,
    /// Set when the loop has closed: a remote wake then drops its task at
    /// once, since no loop will drain the queue (and a task left in it would
    /// keep itself and this struct alive: a reference cycle).
    pub(crate) closed: AtomicBool,
}

/// Work from other threads, until the loop closes.
struct Inbox {
    open: bool,
    jobs: Vec<RemoteJob>,
}

/// One piece of work handed to a loop from another thread.
pub(crate) enum RemoteJob {
    /// A `call_soon_threadsafe` callback.
    Call(Box<dyn FnOnce() + Send>),
    /// A task built on another thread, to be adopted by the loop.
    Adopt(Arc<TaskCell>),
}

impl Shared {
    fn push_remote(&self, task: Arc<TaskCell>) {
        if task.remote_queued.swap(true, Ordering::AcqRel) {
            return; // already on its way
        }
        self.remote.push(task);
        // SeqCst on both sides (see `close_remote`): either the loop's last
        // drain sees this task, or this sees the loop closed and drains.
        if self.closed.load(Ordering::SeqCst) {
            self.drain_closed();
            return;
        }
        self.notify();
    }

    /// The loop is closing: remote wakes from now on find no one to run
    /// them. Drops the tasks queued so far.
    pub(crate) fn close_remote(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.drain_closed();
    }

    fn drain_closed(&self) {
        while let Some(task) = self.remote.pop() {
            drop(task);
        }
    }

    /// Hands work to the loop from any thread; gives it back if the loop has
    /// closed.
    pub(crate) fn send(&self, job: RemoteJob) -> Result<(), RemoteJob> {
        {
            let mut inbox = crate::rt::lock::lock(&self.inbox);
            if !inbox.open {
                return Err(job);
            }
            inbox.jobs.push(job);
        }
        self.inbox_ready.store(true, Ordering::Release);
        self.notify();
        Ok(())
    }

    /// Wakes the loop if it sleeps in `poll`. Pairs with the fence in
    /// `Core::turn`: either the loop sees our work before it sleeps, or we see
    /// it sleeping and wake it.
    fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            let _ = self.poller.wake();
        }
    }

    /// Takes the jobs handed in so far; with `close`, refuses later ones.
    fn take_inbox(&self, close: bool) -> Vec<RemoteJob> {
        let mut inbox = crate::rt::lock::lock(&self.inbox);
        if close {
            inbox.open = false;
        }
        mem::take(&mut inbox.jobs)
    }

    fn has_remote_work(&self) -> bool {
        !self.remote.is_empty() || self.inbox_ready.load(Ordering::Acquire)
    }
}

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
    /// Stack bytes held by `idle`, bounded by `stack::MAX_IDLE_BYTES`.
    idle_bytes: Cell<usize>,
    /// This loop's share of the process-wide stack reservations.
    reservations: stack::Reservations,
    /// `stop()` was called; `run_forever` returns at its next check.
    stopping: Cell<bool>,
    /// The loop is being driven (guards against nested runs).
    running: Cell<bool>,
}

thread_local! {
    /// This thread's loop, from `EventLoop::new` until it is dropped.
    static CORE: Slot = const { Slot(RefCell::new(None)) };
    /// The same loop as a plain pointer (null when there is none), so that the
    /// hot paths (every wake, every wait) reach it without a lazily
    /// initialized thread-local or a `RefCell` borrow.
    static CORE_PTR: Cell<*const Core> = const { Cell::new(std::ptr::null()) };
}

/// `CORE`'s value; clears `CORE_PTR` before the loop it points to can go,
/// should the thread end with its loop still installed (a leaked `EventLoop`).
struct Slot(RefCell<Option<Rc<Core>>>);

impl Drop for Slot {
    fn drop(&mut self) {
        CORE_PTR.with(|ptr| ptr.set(std::ptr::null()));
    }
}

/// Runs `f` with this thread's loop, if it has one.
#[inline]
pub(crate) fn with_core<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
    let ptr = CORE_PTR.with(Cell::get);
    // SAFETY: `CORE_PTR` is non-null only while `CORE` holds the `Rc` it
    // points into: `install` sets it after storing the `Rc`; `uninstall` and
    // `Slot`'s destructor clear it before giving the `Rc` up. Neither runs
    // inside `f`: uninstalling is dropping the `EventLoop`, which no internal
    // closure does. An `f` that parks a fiber (a blocking wait) is suspended,
    // not running, while the loop turns; the loop is uninstalled only after
    // it has unwound every fiber (or given one up for good, never to resume
    // it), so such an `f` only ever runs while the loop is alive.
    (!ptr.is_null()).then(|| f(unsafe { &*ptr }))
}

/// This thread's loop, if it has one.
pub(crate) fn core() -> Option<Rc<Core>> {
    CORE.try_with(|core| core.0.borrow().clone()).ok().flatten()
}

/// Makes `core` this thread's loop; fails if the thread already has one.
pub(crate) fn install(core: Rc<Core>) -> io::Result<()> {
    CORE.with(|slot| {
        let mut slot = slot.0.borrow_mut();
        if slot.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "this thread already has a fiberloop event loop (one loop per thread)",
            ));
        }
        CORE_PTR.with(|ptr| ptr.set(Rc::as_ptr(&core)));
        *slot = Some(core);
        Ok(())
    })
}

/// Removes this thread's loop.
pub(crate) fn uninstall() -> Option<Rc<Core>> {
    CORE_PTR.with(|ptr| ptr.set(std::ptr::null()));
    CORE.try_with(|slot| slot.0.borrow_mut().take())
        .ok()
        .flatten()
}

/// Queues a woken task on its loop: directly on the loop's own thread (where
/// its reference goes to the task's bank), through the remote queue from
/// anywhere else.
#[inline]
pub(crate) fn wake_task(task: Arc<TaskCell>) {
    let mut task = Some(task);
    with_core(|core| {
        if task
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(&core.shared, &t.shared))
        {
            let task = task.take().expect("checked");
            core.schedule_ref(&task);
            TaskCell::release_on_owner(task, core);
        }
    });
    if let Some(task) = task {
        let shared = task.shared.clone();
        shared.push_remote(task);
    }
}

/// Queues `task` if the caller is on its loop's thread; false otherwise.
pub(crate) fn wake_local(task: &TaskCell) -> bool {
    with_core(|core| {
        let local = Arc::ptr_eq(&core.shared, &task.shared);
        if local {
            core.schedule_ref(task);
        }
        local
    })
    .unwrap_or(false)
}

/// Waits for `task` to finish if the caller is a fiber of the same loop, by
/// leaving its own task in `task`'s owner-only joiner cell: no atomics, no
/// `Waker`. Returns `None`, having done nothing, for any other caller.
/// Inlined so the switch happens close to the caller's frame (see
/// docs/benchmarks.md on the return-address predictor).
#[inline]
pub(crate) fn join_on_same_loop(
    task: &Arc<TaskCell>,
) -> Option<Result<(), crate::rt::wait::WaitError>> {
    if !crate::rt::coro::in_fiber() {
        return None;
    }
    let core = core()?;
    if !Arc::ptr_eq(core.shared(), &task.shared) {
        return None;
    }
    // Inside a timeout scope, the generic path (which sets a timer) applies.
    if core
        .with_current(|me| me.local(&core).deadline.get())
        .flatten()
        .is_some()
    {
        return None;
    }
    let joiner = &task.local(&core).joiner;
    let me = core.current_key().expect("a running fiber has a task");
    while !task.is_complete() {
        joiner.set(Some(me));
        if let Err(e) = crate::rt::wait::park(Suspend::Park) {
            return Some(Err(e)); // cancelled while unwinding
        }
    }
    Some(Ok(()))
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
            closed: AtomicBool::new(false),
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
            idle_bytes: Cell::new(0),
            reservations: stack::Reservations::default(),
            stopping: Cell::new(false),
            running: Cell::new(false),
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

    /// Creates a task for `closure` and queues it ahead of older work.
    ///
    /// The fiber gets its stack when it first runs; a reservation made now
    /// makes sure there will be one to map, so that hitting the limit on
    /// live stacks is reported by this spawn (see the `stack` module). If no
    /// idle coroutine of that size is at hand, one is made now, so that a
    /// size that cannot be mapped (address space, memory) is reported here
    /// too.
    pub(crate) fn spawn(
        &self,
        closure: Closure,
        name: Option<Arc<str>>,
        stack_size: usize,
    ) -> io::Result<Arc<TaskCell>> {
        let stack_size = crate::sys::stack::usable_size(stack_size)?;
        self.reservations.reserve(stack_size)?;
        if !self.has_idle(stack_size) {
            match stack::take(stack_size) {
                Ok(stack) => self.park_idle(Coro::new(stack)),
                Err(e) => {
                    self.reservations.unreserve();
                    return Err(e);
                }
            }
        }
        let task = self.insert(Body::NotStarted(closure), name, stack_size);
        task.local(self).reserved.set(true);
        Ok(task)
    }

    /// Builds a task for a loop from any thread; the loop adopts it later.
    pub(crate) fn remote_task(shared: &Arc<Shared>, body: Body) -> Arc<TaskCell> {
        let size = if let Body::NotStarted(_) = body {
            stack::DEFAULT_STACK_SIZE
        } else {
            0
        };
        TaskCell::new(next_id(), None, size, shared.clone(), body)
    }

    /// Creates an async task polling `future` and queues it ahead of older work.
    pub(crate) fn spawn_future(&self, future: BoxFuture) -> Arc<TaskCell> {
        self.insert(Body::Future(future), None, 0)
    }

    /// Adds a task to the live-task table and queues it ahead of older work
    /// (after the tasks the running item spawned before it).
    fn insert(&self, body: Body, name: Option<Arc<str>>, stack_size: usize) -> Arc<TaskCell> {
        let task = TaskCell::new(next_id(), name, stack_size, self.shared.clone(), body);
        let local = task.local(self);
        local.key.set(self.tasks.borrow_mut().insert(task.clone()));
        local.queued.set(true);
        let mut ready = self.ready.borrow_mut();
        let at = self.spawn_at.get().min(ready.len());
        if at == 0 {
            ready.push_front(Runnable::Task(local.key.get()));
        } else {
            ready.insert(at, Runnable::Task(local.key.get()));
        }
        if at <= self.inherited.get() {
            self.inherited.set(self.inherited.get() + 1);
        }
        self.spawn_at.set(at + 1);
        drop(ready);
        task
    }

    fn has_idle(&self, size: usize) -> bool {
        self.idle.borrow().iter().rev().any(|c| c.size() == size)
    }

    /// A coroutine for a fiber that is starting: an idle one of its stack
    /// size, or a new one. Its stack is reserved (taken here for a fiber that
    /// was handed in from another thread). At the limit on mapped stacks,
    /// idle stacks of other sizes are unmapped to make room, once.
    #[inline]
    fn coroutine_for(&self, local: &crate::rt::task::Local) -> io::Result<Coro> {
        if !local.reserved.get() {
            self.reservations.reserve(local.stack_size)?;
            local.reserved.set(true);
        }
        match self.take_idle(local.stack_size) {
            Ok(coro) => Ok(coro),
            Err(_) => self.take_idle_after_trim(local.stack_size),
        }
    }

    /// [`take_idle`](Self::take_idle) again after unmapping every idle stack
    /// of this thread (pool and idle coroutines): the rare path, kept out of
    /// the way of the common one.
    #[cold]
    #[inline(never)]
    fn take_idle_after_trim(&self, size: usize) -> io::Result<Coro> {
        let idle = mem::take(&mut *self.idle.borrow_mut());
        self.idle_bytes.set(0);
        for coro in idle {
            drop(coro.retire());
        }
        stack::trim();
        self.take_idle(size)
    }

    /// Ends a finished (or never started) fiber's stack reservation.
    fn unreserve(&self, local: &crate::rt::task::Local) {
        if local.reserved.replace(false) {
            self.reservations.unreserve();
        }
    }

    /// An idle coroutine of `size`, or a new one.
    #[inline]
    fn take_idle(&self, size: usize) -> io::Result<Coro> {
        let mut idle = self.idle.borrow_mut();
        let found = match idle.last() {
            Some(last) if last.size() == size => Some(idle.len() - 1),
            _ => idle.iter().rposition(|c| c.size() == size),
        };
        match found {
            Some(index) => {
                self.idle_bytes.set(self.idle_bytes.get() - size);
                Ok(idle.swap_remove(index))
            }
            None => {
                drop(idle);
                Ok(Coro::new(stack::take(size)?))
            }
        }
    }

    /// Keeps a coroutine whose fiber ended for the next fiber, or retires it
    /// (its stack back to the pool) when enough are idle already.
    fn park_idle(&self, coro: Coro) {
        let size = coro.size();
        if self.idle_bytes.get() + size > stack::MAX_IDLE_BYTES {
            stack::give_back(coro.retire());
            return;
        }
        self.idle_bytes.set(self.idle_bytes.get() + size);
        self.idle.borrow_mut().push(coro);
    }

    /// Number of idle coroutines (for diagnostics and leak checks).
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.borrow().len()
    }

    /// Queues a callback at the back of the ready queue.
    pub(crate) fn push_callback(&self, callback: Rc<CallbackCell>) {
        self.ready.borrow_mut().push_back(Runnable::Call(callback));
    }

    /// Puts a woken task at the back of the ready queue, unless it is queued
    /// already or finished.
    #[inline]
    pub(crate) fn schedule(&self, task: Arc<TaskCell>) {
        self.schedule_ref(&task);
    }

    #[inline]
    pub(crate) fn schedule_ref(&self, task: &TaskCell) {
        let local = task.local(self);
        if !task.is_complete() && !local.queued.replace(true) {
            self.ready
                .borrow_mut()
                .push_back(Runnable::Task(local.key.get()));
        }
    }

    /// Schedules the task at `key` if it is still the one with `id` (a joiner
    /// cancelled meanwhile may have left a stale key behind).
    /// Resumes the joiner at `key` next, ahead of older work, if it is still
    /// the task with `id` (a joiner cancelled meanwhile may have left a stale
    /// key behind).
    fn schedule_joiner(&self, key: usize, id: u64) {
        let tasks = self.tasks.borrow();
        let Some(task) = tasks.get(key).filter(|t| t.id == id) else {
            return;
        };
        let local = task.local(self);
        if !task.is_complete() && !local.queued.replace(true) {
            self.ready.borrow_mut().push_front(Runnable::Task(key));
            self.inherited.set(self.inherited.get() + 1);
        }
    }

    /// The next item to run: the head of the queue, except that after
    /// `BUDGET` inherited items in a row the oldest ordinary item goes first.
    #[inline]
    fn next_ready(&self) -> Option<Runnable> {
        let mut ready = self.ready.borrow_mut();
        let inherited = self.inherited.get().min(ready.len());
        if inherited == 0 {
            self.streak.set(0);
            return ready.pop_front();
        }
        if self.streak.get() >= BUDGET && ready.len() > inherited {
            self.streak.set(0);
            return ready.remove(inherited);
        }
        self.streak.set(self.streak.get() + 1);
        self.inherited.set(inherited - 1);
        ready.pop_front()
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
        loop {
            if done() || (honour_stop && self.stopping.replace(false)) {
                return;
            }
            for _ in 0..BUDGET {
                let Some(next) = self.next_ready() else { break };
                self.spawn_at.set(0);
                // `done` can only turn true when a task finishes or a callback
                // runs, so a fiber that merely yielded or parked skips the check.
                let maybe_done = match next {
                    Runnable::Task(key) => self.run_task(key),
                    Runnable::Call(callback) => {
                        run_callback(&callback);
                        true
                    }
                };
                if maybe_done && done() {
                    return;
                }
            }
            self.turn(honour_stop);
        }
    }

    /// One look at the outside world: remote wakes, I/O, timers.
    fn turn(&self, honour_stop: bool) {
        self.drain_remote();
        reactor::drain_released(self);
        let mut timeout = if !self.ready.borrow().is_empty() || (honour_stop && self.stopping.get())
        {
            Some(Duration::ZERO)
        } else {
            let next = self.timers.borrow_mut().next_deadline();
            next.map(|deadline| deadline.saturating_duration_since(Instant::now()))
        };
        if timeout != Some(Duration::ZERO) {
            self.shared.sleeping.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst); // pairs with `Shared::notify`
            if self.shared.has_remote_work() {
                timeout = Some(Duration::ZERO);
            }
        }
        // With work ready and no source registered there is nothing to poll
        // for: remote wakes arrive through the queue drained above and below.
        if timeout != Some(Duration::ZERO) || self.reactor.len() > 0 {
            self.reactor.poll(timeout);
        }
        self.shared.sleeping.store(false, Ordering::Relaxed);
        self.drain_remote();
        if self.timers.borrow().len() > 0 {
            self.fire_timers(Instant::now());
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
            RemoteJob::Adopt(task) => {
                let local = task.local(self);
                local.key.set(self.tasks.borrow_mut().insert(task.clone()));
                local.queued.set(true);
                self.ready
                    .borrow_mut()
                    .push_back(Runnable::Task(local.key.get()));
            }
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
    }

    fn drain_remote(&self) {
        self.drain_inbox();
        while let Some(task) = self.shared.remote.pop() {
            task.remote_queued.store(false, Ordering::Release);
            self.schedule(task);
        }
    }

    fn fire_timers(&self, now: Instant) {
        loop {
            let action = self.timers.borrow_mut().pop_expired(now);
            match action {
                None => return,
                Some(TimerAction::Wake(waker)) => waker.wake(),
                Some(TimerAction::Call(callback)) => self.push_callback(callback),
            }
        }
    }

    /// Resumes (or starts) a task's fiber until it suspends or finishes;
    /// returns whether it finished.
    fn run_task(&self, key: usize) -> bool {
        let Some(task) = self.tasks.borrow().get(key).map(Arc::as_ptr) else {
            return false;
        };
        // SAFETY: the live-task table holds an `Arc` to this task until
        // `finish` removes it, and `finish` hands that `Arc` back to us (kept in
        // `_last` below) so it outlives every use of `task` in this function.
        // Nothing else removes a task while it runs: `cancel` runs only at
        // teardown, outside `run`, and `run` cannot be re-entered.
        let task: &TaskCell = unsafe { &*task };
        let local = task.local(self);
        local.queued.set(false);
        let mut body = local.body.borrow_mut();
        let result = match &mut *body {
            Body::Future(future) => {
                let done = if task.cancel_requested() {
                    Some(Err(JoinError::cancelled()))
                } else {
                    self.current.set(Some(NonNull::from(task)));
                    let polled = poll_future(self, task, future);
                    self.current.set(None);
                    polled
                };
                let Some(output) = done else { return false };
                let future = mem::replace(&mut *body, Body::Done);
                drop(body);
                drop(future); // the future's destructors run here, on the owner thread
                let _last = self.finish(task, output);
                return true;
            }
            Body::Started(coro) => {
                self.current.set(Some(NonNull::from(task)));
                coro.resume(&local.fault, self.resume_how(task, local))
            }
            Body::Done => return false, // finished while queued (a stale wake)
            Body::NotStarted(_) => {
                let Body::NotStarted(closure) = mem::replace(&mut *body, Body::Done) else {
                    unreachable!("matched just above")
                };
                if task.cancel_requested() {
                    // Cancelled before it ever ran: it never will.
                    drop(body);
                    drop(closure);
                    let _last = self.finish(task, Err(JoinError::cancelled()));
                    return true;
                }
                let coro = match self.coroutine_for(local) {
                    Ok(coro) => coro,
                    Err(e) => {
                        drop(body);
                        drop(closure); // its captures are dropped here, on the owner thread
                        if task.is_detached() {
                            // No join will report it: say it here.
                            eprintln!("fiberloop: fiber #{} could not start: {e}", task.id);
                        }
                        let _last = self.finish(task, Err(JoinError::no_stack(e)));
                        return true;
                    }
                };
                let (guard, size) = coro.stack_bounds();
                local.fault.guard.set(guard);
                local.fault.size.set(size);
                *body = Body::Started(coro);
                let Body::Started(coro) = &mut *body else {
                    unreachable!("set just above")
                };
                self.current.set(Some(NonNull::from(task)));
                coro.start(&local.fault, closure)
            }
        };
        self.current.set(None);
        match result {
            CoroutineResult::Yield(Suspend::Yield) => {
                // The task is ours and not finished: re-queue it directly,
                // unless a wake during its run queued it already.
                drop(body);
                if !local.queued.replace(true) {
                    self.ready.borrow_mut().push_back(Runnable::Task(key));
                }
                false
            }
            CoroutineResult::Yield(Suspend::Park) => {
                // A cancelled fiber that parks again (it caught the unwind)
                // has no waker left to queue it: queue it, so that it is
                // unwound again after the others had their turn.
                if self.resume_how(task, local) == Resume::Unwind && !local.queued.replace(true) {
                    drop(body);
                    self.ready.borrow_mut().push_back(Runnable::Task(key));
                }
                false
            }
            CoroutineResult::Yield(Suspend::Done) => {
                let Body::Started(coro) = mem::replace(&mut *body, Body::Done) else {
                    unreachable!("a fiber that ran has a coroutine")
                };
                drop(body);
                let exit = coro.take_exit();
                self.park_idle(coro);
                let _last = self.finish(task, output_of(exit));
                true
            }
            CoroutineResult::Return(()) => {
                // Only a retired coroutine returns; a fiber's never does.
                *body = Body::Done;
                drop(body);
                let _last = self.finish(task, Err(JoinError::cancelled()));
                true
            }
        }
    }

    /// How to resume a started fiber: unwind it if it was cancelled, unless
    /// it waits in a shielded wait.
    #[inline]
    fn resume_how(&self, task: &TaskCell, local: &crate::rt::task::Local) -> Resume {
        if task.cancel_requested() && !local.shielded.get() {
            Resume::Unwind
        } else {
            Resume::Run
        }
    }

    /// Publishes a task's output and forgets the task. Returns the table's
    /// reference, for the caller to drop once it no longer uses `task`.
    #[must_use]
    fn finish(&self, task: &TaskCell, output: Output) -> Option<Arc<TaskCell>> {
        let local = task.local(self);
        self.unreserve(local);
        task.complete(local, output);
        if let Some((key, id)) = local.joiner.take() {
            self.schedule_joiner(key, id);
        }
        task.close_bank(local);
        self.tasks.borrow_mut().try_remove(local.key.get())
    }

    /// Number of live fibers (started or not).
    pub(crate) fn task_count(&self) -> usize {
        self.tasks.borrow().len()
    }

    /// Cancels every live fiber: unstarted ones are dropped, suspended ones are
    /// unwound so their destructors run. Then drops queued callbacks and timers.
    pub(crate) fn cancel_all(&self) {
        // Destructors may spawn or wake; a few rounds catch what they start.
        for _ in 0..8 {
            // Newest first: a fiber's children (which may borrow from its stack
            // in a `scope`) unwind before it does.
            let mut tasks: Vec<Arc<TaskCell>> =
                self.tasks.borrow().iter().map(|(_, t)| t.clone()).collect();
            tasks.sort_by_key(|t| std::cmp::Reverse(t.id));

            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                self.cancel(&task);
            }
        }
        let left = self.tasks.borrow().len();
        if left > 0 {
            eprintln!("fiberloop: {left} fibers kept spawning while the loop was closing; dropped");
            let tasks: Vec<Arc<TaskCell>> = self.tasks.borrow_mut().drain().collect();
            for task in tasks {
                let local = task.local(self);
                *local.body.borrow_mut() = Body::Done;
                self.unreserve(local);
                task.close_bank(local);
            }
        }
        let ready = mem::take(&mut *self.ready.borrow_mut());
        drop(ready);
        let mut timers = mem::take(&mut *self.timers.borrow_mut());
        timers.clear();
        // Idle coroutines return from their root; their stacks go to the
        // thread's pool for the next loop (or generators).
        let idle = mem::take(&mut *self.idle.borrow_mut());
        self.idle_bytes.set(0);
        for coro in idle {
            stack::give_back(coro.retire());
        }
    }

    fn cancel(&self, task: &Arc<TaskCell>) {
        let local = task.local(self);
        let body = mem::replace(&mut *local.body.borrow_mut(), Body::Done);
        match body {
            Body::Done => {}
            Body::Future(future) => {
                drop(future);
                drop(self.finish(task, Err(JoinError::cancelled())));
            }
            Body::NotStarted(closure) => {
                drop(closure);
                drop(self.finish(task, Err(JoinError::cancelled())));
            }
            Body::Started(mut coro) => {
                self.current.set(Some(NonNull::from(&**task)));
                for _ in 0..UNWIND_ATTEMPTS {
                    match coro.resume(&local.fault, Resume::Unwind) {
                        CoroutineResult::Yield(Suspend::Done) => {
                            self.current.set(None);
                            let exit = coro.take_exit();
                            self.park_idle(coro);
                            drop(self.finish(task, output_of(exit)));
                            return;
                        }
                        CoroutineResult::Return(()) => break,
                        CoroutineResult::Yield(_) => {} // blocked again while unwinding
                    }
                }
                self.current.set(None);
                eprintln!(
                    "fiberloop: fiber #{} kept blocking while being cancelled; leaking its stack",
                    task.id
                );
                mem::forget(coro);
                drop(self.finish(task, Err(JoinError::cancelled())));
            }
        }
    }
}

/// Polls an async task's future once, with a waker that borrows the table's
/// reference to the task. Returns its output once it is ready (or panicked).
fn poll_future(core: &Core, task: &TaskCell, future: &mut BoxFuture) -> Option<Output> {
    let key = task.local(core).key.get();
    let tasks = core.tasks.borrow();
    let table_ref: &Arc<TaskCell> = tasks.get(key).expect("a running task is in the table");
    // Borrows the table's reference, which outlives this poll (the task
    // leaves the table only in `finish`, after we return).
    let waker = crate::rt::task::waker_ref(table_ref);
    drop(tasks); // the future may spawn, which needs the table
    let mut cx = std::task::Context::from_waker(&waker);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        future.as_mut().poll(&mut cx)
    })) {
        Ok(std::task::Poll::Pending) => None,
        Ok(std::task::Poll::Ready(value)) => Some(Ok(value)),
        Err(payload) => Some(Err(JoinError::panicked(payload))),
    }
}

fn output_of(exit: Exit) -> Output {
    match exit {
        Ok(value) => Ok(value),
        Err(payload) if payload.is::<ForcedUnwind>() => Err(JoinError::cancelled()),
        Err(payload) => Err(JoinError::panicked(payload)),
    }
}

fn run_callback(callback: &CallbackCell) {
    let Some(f) = callback.f.take() else { return }; // cancelled
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        // The panic hook has printed the message; like asyncio's default
        // exception handler, report and keep the loop going.
        eprintln!("fiberloop: a loop callback panicked; the loop carries on");
    }
}
