//! The shared state of a task (a fiber or an async task), and the handles
//! users hold to fibers.
//!
//! A [`TaskCell`] is one task's shared state, kept in an `Arc` so that a
//! [`std::task::Waker`] can point at it: every wait in fiberloop (socket, timer,
//! join) ends in a `Waker`, and waking a fiber's waker puts the fiber back on
//! its loop's ready queue. That single mechanism serves both the fiber model and
//! `async` code, so channels, timers and sockets are written once.
//!
//! # Thread rules
//!
//! A task belongs to the loop (OS thread) that spawned it and never runs
//! anywhere else. Its fields fall in two groups:
//!
//! - *shared*: `state`, `join`, `remote_queued` are atomics, touched from any
//!   thread (a waker may be woken elsewhere, a join handle may be sent away);
//! - *owner*: everything in [`Local`] is touched only on the owning loop's
//!   thread. Every access goes through [`TaskCell::local`] (or its
//!   non-panicking twin), which takes the loop's `Core` as proof and checks it
//!   is the owner.
//!
//! The loop keeps a strong reference to every live task and clears its body on
//! its own thread when the task finishes or is cancelled, so the last reference
//! (perhaps a waker on another thread) only ever drops an empty body.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use atomic_waker::AtomicWaker;

use super::bank::RefBank;
use super::state::{OutputSlot, State};
use crate::rt::coro::Coro;
use crate::rt::scheduler::{Core, Shared};
use crate::sys::signal::FaultInfo;

/// A fiber's result before it is handed to the joiner: the value, boxed so that
/// the scheduler stays non-generic (a `()` or other zero-sized value does not
/// allocate), or why there is none.
pub(crate) type Output = Result<Box<dyn Any>, JoinError>;

/// What a fiber runs, before it has a stack.
pub(crate) type Closure = Box<dyn FnOnce() -> Box<dyn Any>>;

/// What an async task polls.
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Box<dyn Any>>>>;

/// One fiber: its identity, its body, and its join slot.
pub(crate) struct TaskCell {
    pub(crate) id: u64,
    pub(crate) name: Option<Arc<str>>,
    /// The owning loop's thread-safe half: remote queue and poller waker.
    pub(crate) shared: Arc<Shared>,
    /// The bits other threads read and set (see `state.rs`).
    state: State,
    /// True while the task sits in `shared.remote` (deduplicates remote wakes).
    pub(crate) remote_queued: AtomicBool,
    /// Woken when the task completes.
    join: AtomicWaker,
    /// Written once by the owner thread before `COMPLETE` is set (release);
    /// taken once by whoever sees `COMPLETE` and holds the handle, or by the
    /// owner if the handle was dropped first.
    output: OutputSlot<Output>,
    local: Local,
}

/// The fields only the owning loop's thread may touch.
pub(crate) struct Local {
    /// True while the task is in the ready queue (deduplicates local wakes).
    pub(crate) queued: Cell<bool>,
    /// Key of this task in the loop's table of live tasks.
    pub(crate) key: Cell<usize>,
    /// Usable stack size requested for the fiber.
    pub(crate) stack_size: usize,
    pub(crate) body: RefCell<Body>,
    /// Stack bounds, published to the SIGSEGV handler while the fiber runs.
    pub(crate) fault: FaultInfo,
    /// A fiber of this same loop waiting in `join`, by table key and id: woken
    /// directly on completion, without the thread-safe `join` slot.
    pub(crate) joiner: Cell<Option<(usize, u64)>>,
    /// The nearest deadline of the `fiberloop::timeout` scopes the fiber is in.
    pub(crate) deadline: Cell<Option<std::time::Instant>>,
    /// True while the fiber holds a stack reservation (`stack::reserve`).
    pub(crate) reserved: Cell<bool>,
    /// True while the fiber is parked in a shielded wait: a cancellation then
    /// resumes it normally instead of unwinding it.
    pub(crate) shielded: Cell<bool>,
    /// Strong counts held for the next waker clones (see [`waker_ref`]);
    /// closed once the task left the table.
    bank: RefBank,
}

/// The life of a task's body: for a fiber, a closure (no stack yet), then a
/// suspended or running coroutine; for an async task, a future; then nothing.
pub(crate) enum Body {
    NotStarted(Closure),
    Started(Coro),
    Future(BoxFuture),
    Done,
}

// SAFETY: the non-Sync parts of `TaskCell` are `local` (Cells/RefCells, the body
// with a `!Send` coroutine and closure) and `output`. `local` is reached only
// through `TaskCell::local`, which checks that the caller is on the owning loop's
// thread. `output` is written by the owner before `COMPLETE` is published with
// release ordering and read by one party after it observes `COMPLETE` with
// acquire ordering (see `complete`, `take_output`, `detach`); a `!Send` output
// is only ever held by a `JoinHandle<T>` that is itself `!Send`, so it is read
// and dropped on the owner thread. The body is emptied on the owner thread
// before the loop releases the task, so dropping the last `Arc` elsewhere never
// drops a coroutine or closure there.
unsafe impl Sync for TaskCell {}
// SAFETY: see `Sync` above; moving the `Arc` moves only the pointer.
unsafe impl Send for TaskCell {}

impl TaskCell {
    /// A new task, in the `Arc` every `TaskCell` lives in (its wakers rely
    /// on that: see [`waker_ref`]).
    pub(crate) fn new(
        id: u64,
        name: Option<Arc<str>>,
        stack_size: usize,
        shared: Arc<Shared>,
        body: Body,
    ) -> Arc<TaskCell> {
        Arc::new(TaskCell {
            id,
            name: name.clone(),
            shared,
            state: State::new(),
            remote_queued: AtomicBool::new(false),
            join: AtomicWaker::new(),
            output: OutputSlot::new(),
            local: Local {
                queued: Cell::new(false),
                joiner: Cell::new(None),
                deadline: Cell::new(None),
                shielded: Cell::new(false),
                reserved: Cell::new(false),
                bank: RefBank::new(),
                key: Cell::new(usize::MAX),
                stack_size,
                body: RefCell::new(body),
                fault: FaultInfo {
                    guard: Cell::new((0, 0)),
                    size: Cell::new(0),
                    id,
                    name,
                },
            },
        })
    }

    /// The owner-thread fields. `core` proves we are on a loop thread; the
    /// check proves it is this task's loop.
    #[inline]
    pub(crate) fn local(&self, core: &Core) -> &Local {
        assert!(
            Arc::ptr_eq(&self.shared, core.shared()),
            "fiberloop: a task was touched from a loop that does not own it"
        );
        &self.local
    }

    /// The owner-thread fields if `core` is this task's loop.
    #[inline]
    fn local_if_owner(&self, core: &Core) -> Option<&Local> {
        Arc::ptr_eq(&self.shared, core.shared()).then_some(&self.local)
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.state.is_complete()
    }

    /// Asks the loop to cancel the task (used for async tasks): the loop drops
    /// its future, on its own thread, the next time it picks the task up.
    pub(crate) fn request_cancel(self: &Arc<Self>) {
        if self.state.request_cancel() {
            waker_ref(self).wake_by_ref();
        }
    }

    /// Ends a task that no loop ever adopted (its loop closed first): drops
    /// the body here, on the thread that built it, and completes the task as
    /// cancelled.
    pub(crate) fn abandon(&self) {
        *self.local.body.borrow_mut() = Body::Done;
        self.complete(&self.local, Err(JoinError::cancelled()));
    }

    /// True once the join handle was dropped: nobody will hear the outcome.
    pub(crate) fn is_detached(&self) -> bool {
        self.state.is_detached()
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.state.cancel_requested()
    }

    /// Stores the output and wakes the joiner. Owner thread only (it takes the
    /// `Local` as proof).
    pub(crate) fn complete(&self, _owner: &Local, output: Output) {
        // SAFETY: only the owner thread writes `output`, once, before COMPLETE;
        // no reader looks at it until COMPLETE is set below.
        unsafe { self.output.put(output) };
        let completed = self.state.complete();
        if completed.drop_output {
            // Nobody will join: drop the output here, on the owner thread.
            // SAFETY: the handle is gone (DETACHED), so we are the only party.
            drop(unsafe { self.output.take() });
        }
        // Whoever waits for completion (a joiner, or a scope holding no
        // handle) is woken either way.
        if completed.wake_joiner {
            self.join.wake();
        }
    }

    /// Polls for completion, registering `cx`'s waker if not complete.
    pub(crate) fn poll_complete(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_complete() {
            return Poll::Ready(());
        }
        self.join.register(cx.waker());
        if self.state.join_waker_set() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Takes the output. Only the join handle calls this, once, after it has
    /// seen `is_complete()`.
    fn take_output(&self) -> Output {
        debug_assert!(self.is_complete());
        // SAFETY: COMPLETE was observed with acquire ordering, so the owner's
        // write is visible and finished; the handle is consumed by this call,
        // so nobody else reads the slot (the owner only drops it if DETACHED).
        unsafe { self.output.take() }.unwrap_or_else(|| Err(JoinError::cancelled()))
    }

    /// The join handle was dropped without joining.
    fn detach(&self) {
        if self.state.detach() {
            // SAFETY: COMPLETE is set (acquire above), so the owner is done
            // writing and, seeing no DETACHED then, left the output to us.
            drop(unsafe { self.output.take() });
        }
    }
}

impl Drop for TaskCell {
    fn drop(&mut self) {
        debug_assert!(
            matches!(*self.local.body.get_mut(), Body::Done),
            "a task was released with a live body"
        );
    }
}

/// A task's `Waker`: a strong reference to its `TaskCell`, with fiberloop's
/// own vtable so that reference counting can skip atomics on the owner thread.
///
/// Waking re-queues the task on its own loop: directly when woken on that
/// loop's thread, through the loop's remote queue otherwise.
///
/// The reference bank: a waker's strong count is the cost of every wait (a
/// clone when registering, a decrement when woken). On the owner thread a
/// woken or dropped waker does not decrement; it puts its count in the task's
/// bank (`Local::bank`, owner-only: see `bank.rs`), and the next clone there
/// takes it back instead of incrementing. Every waker still owns one real
/// strong count; the bank only holds counts the loop would have released and
/// taken again. It closes (giving its counts back) when the task leaves the
/// table, after which every release is a real decrement.
///
/// Every task waker starts here: a waker lent the caller's reference to
/// `task`. It must not outlive that reference, and is never dropped (clones
/// own their counts as usual).
#[inline]
pub(crate) fn waker_ref(task: &TaskCell) -> ManuallyDrop<Waker> {
    let ptr: *const TaskCell = task;
    // SAFETY: `task` lives in an `Arc` (`TaskCell::new` makes only those,
    // and nothing moves one out), so the pointer is one `Arc::into_raw` would
    // give. `ManuallyDrop` keeps the waker from releasing the count it
    // borrows; the caller keeps the reference alive while the waker is used.
    ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(ptr.cast(), &VTABLE)) })
}

static VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

// SAFETY (for the four functions below): `ptr` always points into an
// `Arc<TaskCell>` allocation, as from `Arc::into_raw` (see `waker_ref`), and
// the waker being cloned, woken or dropped owns (or, for `waker_ref`,
// borrows) one strong count, so the `TaskCell` is alive during each call.

unsafe fn waker_clone(ptr: *const ()) -> RawWaker {
    // SAFETY: see above.
    let task = unsafe { &*ptr.cast::<TaskCell>() };
    if !task.take_spare_ref() {
        // SAFETY: see above: the count is at least one.
        unsafe { Arc::increment_strong_count(ptr.cast::<TaskCell>()) };
    }
    RawWaker::new(ptr, &VTABLE)
}

unsafe fn waker_wake(ptr: *const ()) {
    // SAFETY: see above; this takes over the waker's count.
    let task = unsafe { Arc::from_raw(ptr.cast::<TaskCell>()) };
    crate::rt::scheduler::wake_task(task);
}

unsafe fn waker_wake_by_ref(ptr: *const ()) {
    // SAFETY: see above.
    let task = unsafe { &*ptr.cast::<TaskCell>() };
    if !crate::rt::scheduler::wake_local(task) {
        // SAFETY: see above; the new count goes to the remote queue.
        unsafe { Arc::increment_strong_count(ptr.cast::<TaskCell>()) };
        // SAFETY: the count just added.
        crate::rt::scheduler::wake_task(unsafe { Arc::from_raw(ptr.cast::<TaskCell>()) });
    }
}

unsafe fn waker_drop(ptr: *const ()) {
    // SAFETY: see above.
    let task = unsafe { &*ptr.cast::<TaskCell>() };
    if !task.bank_ref() {
        // SAFETY: see above; this gives back the waker's own count.
        unsafe { Arc::decrement_strong_count(ptr.cast::<TaskCell>()) };
    }
}

impl TaskCell {
    /// The bank, when the caller is on this task's loop thread.
    #[inline]
    fn owner_bank<R>(&self, f: impl FnOnce(&Local) -> R) -> Option<R> {
        crate::rt::scheduler::with_core(|core| self.local_if_owner(core).map(f)).flatten()
    }

    /// Takes a banked strong count for a new waker; false if there is none
    /// (or the caller is not on the owner thread).
    #[inline]
    fn take_spare_ref(&self) -> bool {
        self.owner_bank(|local| local.bank.take()).unwrap_or(false)
    }

    /// Banks a strong count a waker is giving back; false if the bank is
    /// closed or the caller is not on the owner thread (then the caller
    /// releases the count itself).
    #[inline]
    pub(crate) fn bank_ref(&self) -> bool {
        self.owner_bank(|local| local.bank.deposit())
            .unwrap_or(false)
    }

    /// Releases `task`'s reference on its owner thread: into the bank while
    /// it is open, else for real.
    #[inline]
    pub(crate) fn release_on_owner(task: Arc<TaskCell>, core: &Core) {
        if task.local(core).bank.deposit() {
            std::mem::forget(task); // its count is in the bank now
        }
    }

    /// Closes the bank and releases its counts: the task is leaving its
    /// loop's table. The caller still holds a reference.
    pub(crate) fn close_bank(&self, local: &Local) {
        for _ in 0..local.bank.close() {
            // SAFETY: each banked count is a real strong count of this
            // `Arc` allocation; the caller's own reference keeps the count
            // above zero throughout.
            unsafe { Arc::decrement_strong_count(self) };
        }
    }
}

/// An owned permission to join a fiber: [`join`](JoinHandle::join) waits for it
/// and returns its result. Dropping the handle detaches the fiber, which runs
/// on and drops its result when it finishes.
///
/// `JoinHandle<T>` is `Send` when `T` is, so a fiber's result can be waited for
/// from another fiber, another loop or a plain thread.
pub struct JoinHandle<T> {
    task: Option<Arc<TaskCell>>,
    _output: PhantomData<T>,
}

impl<T: 'static> JoinHandle<T> {
    pub(crate) fn new(task: Arc<TaskCell>) -> JoinHandle<T> {
        JoinHandle {
            task: Some(task),
            _output: PhantomData,
        }
    }

    fn task(&self) -> &Arc<TaskCell> {
        self.task.as_ref().expect("join handle used after join")
    }

    /// Waits for the fiber to finish and returns its value, or why there is none.
    ///
    /// In a fiber this blocks only the calling fiber; on a plain thread it
    /// blocks the thread. If the *calling* fiber is cancelled while waiting,
    /// it unwinds from here like from any other wait, and the fiber being
    /// joined runs on, detached.
    ///
    /// # Errors
    /// A [`JoinError`]: the fiber panicked, was cancelled (it was unwound, or
    /// never started), or could not get a stack. Called while the calling
    /// fiber is itself unwinding, `join` cannot wait and reports
    /// [`JoinError::is_cancelled`] unless the fiber has already finished.
    #[inline]
    pub fn join(mut self) -> Result<T, JoinError> {
        let task = self.task.take().expect("join handle used after join");
        if !task.is_complete() {
            let waited = crate::rt::scheduler::join_on_same_loop(&task)
                .unwrap_or_else(|| crate::rt::wait::block_on(None, |cx| task.poll_complete(cx)));
            if waited.is_err() {
                // We could not wait (unwinding, or a timeout scope ran out):
                // leave the fiber detached.
                self.task = Some(task);
                return Err(JoinError::cancelled());
            }
        }
        let output = task.take_output()?;
        Ok(*output
            .downcast::<T>()
            .expect("a fiber's output has the type its handle names"))
    }

    /// True once the fiber has finished (so [`join`](Self::join) will not block).
    pub fn is_finished(&self) -> bool {
        self.task().is_complete()
    }

    /// Cancels the fiber: it ends at its next suspension point, whatever its
    /// code does with errors, as a greenlet ends with `GreenletExit` at its
    /// next switch and an asyncio task with `CancelledError` at its next
    /// `await`.
    ///
    /// - A fiber that has not started never runs.
    /// - A fiber that is waiting (any blocking call, `sleep`, `yield_now`,
    ///   `join`) is woken, and the call does not return: it unwinds the
    ///   fiber's stack with a private panic payload (no panic message is
    ///   printed), running every destructor on the way, and the unwind is
    ///   caught at the fiber's root. [`join`](Self::join) then reports
    ///   [`JoinError::is_cancelled`].
    /// - A fiber that is running carries on until its next suspension point.
    ///   Code that never blocks can look at [`Fiber::is_cancelled`].
    ///
    /// Clean-up belongs in destructors (guards, `Drop` types), which run during
    /// the unwind. While it unwinds the fiber never parks: a blocking call in
    /// a destructor returns `Cancelled` at once (`WaitError::Cancelled`, an
    /// `io::Error` wrapping [`Cancelled`](crate::Cancelled), a channel's
    /// `Cancelled` variant). A `std::sync::MutexGuard` dropped by the unwind
    /// poisons its mutex, as any panic does; fiberloop's own
    /// [`sync::Mutex`](crate::sync::Mutex) does not poison. Code that catches
    /// panics (`catch_unwind`) also catches the cancellation; it is raised
    /// again at the fiber's next suspension point, after the other fibers had
    /// a turn, so such a loop cannot starve the rest.
    ///
    /// The unwind never crosses a C frame: every wait fiberloop offers is
    /// entered from Rust code (a generator's body, on its own stack, cannot
    /// wait at all).
    ///
    /// Waits that must not be abandoned are shielded: a
    /// [`scope`](crate::scope) waiting for fibers that borrow from its stack
    /// passes the cancellation on to them, waits for them, and the fiber
    /// unwinds at its next suspension point after the scope.
    pub fn cancel(&self) {
        self.task().request_cancel();
    }

    /// The fiber this handle joins.
    pub fn fiber(&self) -> Fiber {
        Fiber {
            task: self.task().clone(),
        }
    }
}

/// Async code can `.await` a fiber (or an async task's handle) directly; this
/// is the bridge from the stackless model to the stackful one.
impl<T: 'static> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let task = self.task();
        if task.poll_complete(cx).is_pending() {
            return Poll::Pending;
        }
        let task = self.task.take().expect("checked above");
        let output = task.take_output().map(|out| {
            *out.downcast::<T>()
                .expect("a task's output has the type its handle names")
        });
        Poll::Ready(output)
    }
}

/// The handle never holds a `T` in place (the value lives boxed in the task),
/// so it can be moved after being polled whatever `T` is.
impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// The task's shared state (for the async `Task` handle).
    pub(crate) fn cell(&self) -> &Arc<TaskCell> {
        self.task.as_ref().expect("join handle used after join")
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("JoinHandle");
        if let Some(task) = &self.task {
            d.field("id", &task.id)
                .field("finished", &task.is_complete());
        }
        d.finish()
    }
}

/// A handle to a fiber, for its identity: returned by [`current`](crate::current)
/// and [`JoinHandle::fiber`]. Like [`std::thread::Thread`].
#[derive(Clone)]
pub struct Fiber {
    task: Arc<TaskCell>,
}

impl Fiber {
    pub(crate) fn new(task: Arc<TaskCell>) -> Fiber {
        Fiber { task }
    }

    /// A number unique among the fibers of this process.
    pub fn id(&self) -> FiberId {
        FiberId(self.task.id)
    }

    /// The name given with [`Builder::name`](crate::Builder::name), if any.
    pub fn name(&self) -> Option<&str> {
        self.task.name.as_deref()
    }

    /// True once the fiber has been asked to cancel
    /// ([`JoinHandle::cancel`]): a long computation that never blocks can
    /// check this to stop early.
    pub fn is_cancelled(&self) -> bool {
        self.task.cancel_requested()
    }
}

impl fmt::Debug for Fiber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fiber")
            .field("id", &self.task.id)
            .field("name", &self.name())
            .finish()
    }
}

/// A fiber's unique identifier. Ids are never reused within a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FiberId(pub(crate) u64);

impl FiberId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FiberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why [`JoinHandle::join`] has no value: the fiber panicked, was cancelled, or
/// could not get a stack.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Panicked(Box<dyn Any + Send + 'static>),
    Cancelled,
    NoStack(std::io::Error),
}

impl JoinError {
    pub(crate) fn panicked(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panicked(payload),
        }
    }

    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn no_stack(error: std::io::Error) -> JoinError {
        JoinError {
            repr: Repr::NoStack(error),
        }
    }

    /// True if the fiber panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panicked(_))
    }

    /// True if the fiber was cancelled (for example at the end of its loop).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The panic payload, as [`std::thread::JoinHandle::join`] returns it, so that
    /// `std::panic::resume_unwind(e.into_panic())` re-raises the panic.
    ///
    /// # Panics
    /// If the fiber did not panic; see [`try_into_panic`](Self::try_into_panic).
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .unwrap_or_else(|e| panic!("`into_panic` on a JoinError that is not a panic: {e}"))
    }

    /// The panic payload if the fiber panicked, or the error back otherwise.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panicked(payload) => Ok(payload),
            repr => Err(JoinError { repr }),
        }
    }

    /// The panic message, when the payload is a string (as `panic!` makes it).
    pub fn panic_message(&self) -> Option<&str> {
        match &self.repr {
            Repr::Panicked(payload) => payload
                .downcast_ref::<&'static str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str)),
            _ => None,
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panicked(_) => match self.panic_message() {
                Some(message) => write!(f, "fiber panicked: {message}"),
                None => f.write_str("fiber panicked"),
            },
            Repr::Cancelled => f.write_str("fiber was cancelled"),
            Repr::NoStack(e) => write!(f, "fiber could not start: {e}"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panicked(_) => write!(f, "JoinError::Panicked({:?})", self.panic_message()),
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::NoStack(e) => write!(f, "JoinError::NoStack({e:?})"),
        }
    }
}

impl std::error::Error for JoinError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.repr {
            Repr::NoStack(e) => Some(e),
            _ => None,
        }
    }
}

/// A stack failure keeps its `io::Error`; a cancellation becomes
/// [`Cancelled`](crate::Cancelled); a panic becomes its message (the payload
/// cannot cross into an `io::Error`, which must be `Sync`).
impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        match e.repr {
            Repr::NoStack(e) => e,
            Repr::Cancelled => std::io::Error::other(crate::Cancelled),
            Repr::Panicked(_) => std::io::Error::other(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The task's `Arc`, taken inside the fiber.
    fn this_task() -> Arc<TaskCell> {
        crate::rt::scheduler::with_core(|core| core.current_task())
            .flatten()
            .expect("inside a fiber")
    }

    /// A task's references all come back once its loop is gone, including
    /// one queued by a remote wake the loop never got to (once a reference
    /// cycle through the loop's remote queue).
    #[test]
    fn wakes_leave_no_reference_behind() {
        let task = crate::run(|| crate::spawn(this_task).join().unwrap());
        assert_eq!(Arc::strong_count(&task), 1);
        let task = crate::run(|| {
            crate::spawn(|| {
                let task = this_task();
                let waker = waker_ref(&task);
                let clone = (*waker).clone(); // a registered waker, woken by value
                clone.wake();
                waker.wake_by_ref();
                crate::yield_now();
                task
            })
            .join()
            .unwrap()
        });
        assert_eq!(Arc::strong_count(&task), 1, "wake");
        let task = crate::run(|| {
            crate::spawn(|| {
                let task = this_task();
                let waker = waker_ref(&task);
                let away = (*waker).clone();
                std::thread::spawn(move || away.wake()).join().unwrap();
                crate::yield_now();
                task
            })
            .join()
            .unwrap()
        });
        assert_eq!(Arc::strong_count(&task), 1, "remote wake");
    }

    #[test]
    fn banked_waker_counts_are_all_given_back() {
        let task = crate::run(|| {
            let fiber = crate::spawn(|| {
                let task = this_task();
                let waker = waker_ref(&task);
                // Owner-thread clones, wakes and drops cycle through the bank.
                for _ in 0..100 {
                    let clones: Vec<Waker> = (0..5).map(|_| (*waker).clone()).collect();
                    clones.into_iter().for_each(Waker::wake);
                    drop((*waker).clone());
                    crate::yield_now();
                }
                // A clone dropped on another thread releases for real.
                let away = (*waker).clone();
                std::thread::spawn(move || drop(away)).join().unwrap();
                // And one woken there queues the task remotely.
                let away = (*waker).clone();
                std::thread::spawn(move || away.wake()).join().unwrap();
                crate::yield_now();
                task
            });
            fiber.join().unwrap()
        });
        // The loop is gone: only our reference is left, nothing leaked.
        assert_eq!(Arc::strong_count(&task), 1);
    }
}
