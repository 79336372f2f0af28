//! The handles users hold to fibers: [`JoinHandle`] (join, cancel, await),
//! [`Fiber`] and [`FiberId`] (identity).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::rt::task::{JoinError, TaskCell};

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
    #[inline(always)] // keeps the stack switch in the caller's frame: docs/benchmarks.md
    pub fn join(mut self) -> Result<T, JoinError> {
        let task = self.task.take().expect("join handle used after join");
        if !task.is_complete() {
            let waited = crate::rt::scheduler::join_on_same_loop(&task).unwrap_or_else(|| {
                let on = crate::rt::wait::WaitOn::Join { id: task.id };
                crate::rt::wait::block_on(None, on, |cx| task.poll_complete(cx))
            });
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
            crate::rt::diag::note_pending(crate::rt::diag::WaitOn::Join { id: task.id });
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

    /// Where the fiber was spawned: the caller of [`spawn`](crate::spawn),
    /// [`Builder::spawn`](crate::Builder::spawn), [`run`](crate::run) (for
    /// the main fiber) or another spawning call.
    ///
    /// ```
    /// fiberloop::run(|| {
    ///     let here = line!() + 1;
    ///     let worker = fiberloop::spawn(|| fiberloop::current().spawn_location());
    ///     let location = worker.join().unwrap();
    ///     assert_eq!((location.file(), location.line()), (file!(), here));
    /// });
    /// ```
    pub fn spawn_location(&self) -> &'static std::panic::Location<'static> {
        self.task.location
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
