//! The shared state of a task (a fiber or an async task): `TaskCell`, its
//! owner-only fields and its body. Its waker is in `waker.rs`, the handles
//! users hold are in `crate::task`.
//!
//! A [`TaskCell`] is one task's shared state, kept in an `Arc` so that a
//! [`std::task::Waker`] can point at it: every wait in fiberloop (socket, timer,
//! join) ends in a `Waker`, and waking a fiber's waker puts the fiber back on
//! its loop's ready queue. That single mechanism serves both the fiber model and
//! `async` code, so channels, timers and sockets are written once.
//!
//! # Thread rules
//!
//! A task belongs to the loop (OS thread) that owns it and never runs
//! anywhere else. The owner is the spawning loop, or, for a task spawned on
//! a multi-loop runtime, the loop that adopts it from a runtime queue; until
//! then the task is an unstarted `Send` body that nothing but the thread
//! holding it (the spawner, then whoever popped it) touches. Its fields fall
//! in two groups:
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
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

use super::bank::RefBank;
use super::error::JoinError;
use super::state::{OutputSlot, State};
use super::waker::waker_ref;
use crate::rt::coro::Coro;
use crate::rt::scheduler::{Core, Shared};
use crate::sys::fault::FaultInfo;

/// A fiber's result before it is handed to the joiner: the value, boxed so that
/// the scheduler stays non-generic (a `()` or other zero-sized value does not
/// allocate), or why there is none.
pub(crate) type Output = Result<Box<dyn Any>, JoinError>;

/// What a fiber runs, before it has a stack.
pub(crate) type Closure = Box<dyn FnOnce() -> Box<dyn Any>>;

/// What an async task polls.
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Box<dyn Any>>>>;

/// `f` as a fiber's body: its value boxed, so the scheduler stays non-generic.
#[inline]
pub(crate) fn closure<F, T>(f: F) -> Closure
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    Box::new(move || Box::new(f()) as Box<dyn Any>)
}

/// `future` as an async task's body, its output boxed likewise.
#[inline]
pub(crate) fn boxed_future<F>(future: F) -> BoxFuture
where
    F: Future + 'static,
    F::Output: 'static,
{
    Box::pin(async move { Box::new(future.await) as Box<dyn Any> })
}

/// One fiber: its identity, its body, and its join slot.
pub(crate) struct TaskCell {
    pub(crate) id: u64,
    pub(crate) name: Option<Arc<str>>,
    /// Where it was spawned (the caller of the public spawn function).
    pub(crate) location: &'static std::panic::Location<'static>,
    /// The owning loop's thread-safe half: remote queue and poller waker.
    /// Set when the task is made, or, for a task spawned on a multi-loop
    /// runtime, by the loop that adopts it (it may move until then: it is
    /// only a `Send` closure or an unpolled `Send` future). Set once, never
    /// changed: a task that has an owner stays there. Held as the raw
    /// pointer of one strong count (`Arc::into_raw`), null until set: a plain
    /// load on every check, and no bigger than an `Arc`.
    owner: AtomicPtr<Shared>,
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
    /// What the task waits on while it is parked (see `rt::diag`).
    pub(crate) wait: crate::rt::diag::WaitCell,
    /// The span it was spawned in, and a fiber's own (see `rt::trace`).
    #[cfg(feature = "tracing")]
    pub(crate) span: crate::rt::trace::TaskSpan,
    /// Strong counts held for the next waker clones (see [`waker_ref`]);
    /// closed once the task left the table.
    pub(super) bank: RefBank,
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
// thread. A task without an owner yet (a runtime task in a loop's queue) has a
// `Send` body and is touched only by the one thread that holds it: the
// spawner, then the thread that popped it from the queue (the queue's
// push/pop orders the two) to adopt or abandon it. `output` is written by the owner before `COMPLETE` is published with
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
    #[inline]
    pub(crate) fn new(
        id: u64,
        name: Option<Arc<str>>,
        location: &'static std::panic::Location<'static>,
        stack_size: usize,
        owner: Option<Arc<Shared>>,
        body: Body,
    ) -> Arc<TaskCell> {
        let owner = owner.map_or(std::ptr::null_mut(), |o| Arc::into_raw(o).cast_mut());
        #[cfg(feature = "tracing")]
        crate::rt::trace::event("spawn", id, name.as_deref());
        // Written in place: built on the stack and moved, the cell costs a
        // `memcpy` call per spawn.
        let mut cell = Arc::<TaskCell>::new_uninit();
        let slot = Arc::get_mut(&mut cell).expect("a new Arc is unique");
        slot.write(TaskCell {
            id,
            name: name.clone(),
            location,
            owner: AtomicPtr::new(owner),
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
                wait: crate::rt::diag::WaitCell::new(),
                #[cfg(feature = "tracing")]
                span: crate::rt::trace::TaskSpan::current(),
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
        });
        // SAFETY: `write` just initialised the whole value.
        unsafe { cell.assume_init() }
    }

    /// The owner-thread fields. `core` proves we are on a loop thread; the
    /// check proves it is this task's loop.
    #[inline]
    pub(crate) fn local(&self, core: &Core) -> &Local {
        assert!(
            self.is_owned_by(core.shared()),
            "fiberloop: a task was touched from a loop that does not own it"
        );
        &self.local
    }

    /// The owner-thread fields of the task `core` is running (the one its
    /// `current` names), without the owner check: `current` is set only
    /// around a resume or poll of a task in `core`'s own table, which `core`
    /// owns. For the hot path of every park (the wait record).
    #[inline(always)]
    pub(crate) fn local_of_current(&self, core: &Core) -> &Local {
        debug_assert!(self.is_owned_by(core.shared()));
        &self.local
    }

    /// The owner-thread fields if `core` is this task's loop.
    #[inline]
    pub(super) fn local_if_owner(&self, core: &Core) -> Option<&Local> {
        self.is_owned_by(core.shared()).then_some(&self.local)
    }

    /// The loop that owns the task; `None` while a runtime task waits to be
    /// adopted.
    #[inline]
    pub(crate) fn owner(&self) -> Option<Arc<Shared>> {
        let owner = self.owner.load(Ordering::Acquire);
        if owner.is_null() {
            return None;
        }
        // SAFETY: a non-null `owner` came from `Arc::into_raw` and that count
        // is released only in `Drop`, so the pointee is alive; we add a count
        // for the `Arc` we return.
        Some(unsafe {
            Arc::increment_strong_count(owner);
            Arc::from_raw(owner)
        })
    }

    /// True if the task has an owner.
    #[inline]
    pub(crate) fn has_owner(&self) -> bool {
        !self.owner.load(Ordering::Acquire).is_null()
    }

    /// True if `shared` is the owning loop's.
    #[inline]
    pub(crate) fn is_owned_by(&self, shared: &Arc<Shared>) -> bool {
        std::ptr::eq(self.owner.load(Ordering::Acquire), Arc::as_ptr(shared))
    }

    /// Makes `shared`'s loop the owner of a task that had none; called by
    /// that loop, on its thread, before it touches the task's `Local`.
    pub(crate) fn set_owner(&self, shared: &Arc<Shared>) {
        let new = Arc::into_raw(shared.clone()).cast_mut();
        let set = self.owner.compare_exchange(
            std::ptr::null_mut(),
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if set.is_err() {
            // SAFETY: `new` came from `Arc::into_raw` just above and was not stored.
            drop(unsafe { Arc::from_raw(new) });
            panic!("fiberloop: a task was adopted twice");
        }
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
    /// the body here, on the thread that built it or found it unadopted (its
    /// body is `Send`), and completes the task as cancelled.
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
    pub(crate) fn take_output(&self) -> Output {
        debug_assert!(self.is_complete());
        // SAFETY: COMPLETE was observed with acquire ordering, so the owner's
        // write is visible and finished; the handle is consumed by this call,
        // so nobody else reads the slot (the owner only drops it if DETACHED).
        unsafe { self.output.take() }.unwrap_or_else(|| Err(JoinError::cancelled()))
    }

    /// The join handle was dropped without joining.
    pub(crate) fn detach(&self) {
        if self.state.detach() {
            // SAFETY: COMPLETE is set (acquire above), so the owner is done
            // writing and, seeing no DETACHED then, left the output to us.
            drop(unsafe { self.output.take() });
        }
    }
}

impl Drop for TaskCell {
    fn drop(&mut self) {
        let owner = *self.owner.get_mut();
        if !owner.is_null() {
            // SAFETY: the owner's count was taken with `Arc::into_raw` when it
            // was stored; this is its one release.
            drop(unsafe { Arc::from_raw(owner) });
        }
        debug_assert!(
            matches!(*self.local.body.get_mut(), Body::Done),
            "a task was released with a live body"
        );
    }
}
