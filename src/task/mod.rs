//! Tasks: the async/await model on the same loop as the fibers ([`spawn`],
//! [`Task`]), and the handles to a fiber ([`JoinHandle`], [`Fiber`],
//! [`FiberId`], [`JoinError`]), which async code can await too.
//!
//! A fiber and an async task are the same thing to the scheduler: an entry in
//! one ready queue, woken through one kind of [`Waker`](std::task::Waker), with
//! its I/O on one reactor. A fiber's body is a coroutine with a stack; an async
//! task's body is a future, polled on the loop's own stack. That is what makes
//! the two comparable: the only difference measured is the model.
//!
//! ```
//! use std::time::Duration;
//!
//! let sum = fiberloop::block_on(async {
//!     let a = fiberloop::task::spawn(async {
//!         fiberloop::time::sleep(Duration::from_millis(5)).await;
//!         1
//!     });
//!     // A fiber, awaited from async code: the two models on one loop.
//!     let b = fiberloop::spawn(|| {
//!         fiberloop::sleep(Duration::from_millis(5));
//!         2
//!     });
//!     a.await.unwrap() + b.await.unwrap()
//! });
//! assert_eq!(sum, 3);
//! ```
//!
//! The futures need not be `Send`: an async task never leaves its loop's
//! thread. Use a [`RemoteHandle`](crate::RemoteHandle) to spawn from another
//! thread.

mod join;

pub use crate::rt::task::JoinError;
pub(crate) use crate::rt::task::{boxed_future, closure, Body, TaskCell};
pub use join::{Fiber, FiberId, JoinHandle};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::rt::scheduler;

/// Spawns a future as a task on this thread's loop and returns its handle.
///
/// The task runs concurrently with the caller; await the [`Task`] for its
/// result, or [`detach`](Task::detach) it. Dropping the handle cancels it.
///
/// # Panics
/// If the thread has no event loop (see [`block_on`](crate::block_on)).
#[track_caller] // the spawn location
pub fn spawn<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let future = crate::task::boxed_future(future);
    let location = std::panic::Location::caller();
    let cell = scheduler::with_core(|core| core.spawn_future(future, location))
        .expect("fiberloop::task::spawn: no fiberloop event loop on this thread");
    Task {
        handle: Some(JoinHandle::new(cell)),
    }
}

/// The handle of an async task: a future of its result.
///
/// Unlike a fiber's [`JoinHandle`], dropping a `Task` cancels the task (its
/// future is dropped, on its loop, at the loop's next turn), as in
/// `async-task` and smol. Call [`detach`](Self::detach) to let it run on.
#[must_use = "dropping a Task cancels it; use .detach() to let it run"]
pub struct Task<T> {
    handle: Option<JoinHandle<T>>,
}

impl<T: 'static> Task<T> {
    pub(crate) fn new(handle: JoinHandle<T>) -> Task<T> {
        Task {
            handle: Some(handle),
        }
    }

    /// Lets the task run to completion without a handle; returns a
    /// [`JoinHandle`], which detaches when dropped.
    pub fn detach(mut self) -> JoinHandle<T> {
        self.handle.take().expect("a live Task has its handle")
    }

    /// Cancels the task: its future is dropped on its loop, and awaiting this
    /// handle then yields a cancelled [`JoinError`] (or the value, if it
    /// finished first).
    pub fn cancel(&self) {
        if let Some(handle) = &self.handle {
            handle.cell().request_cancel();
        }
    }

    /// True once the task has finished.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_some_and(JoinHandle::is_finished)
    }
}

impl<T: 'static> Future for Task<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let handle = self.handle.as_mut().expect("Task polled after completion");
        let result = Pin::new(handle).poll(cx);
        if result.is_ready() {
            self.handle = None;
        }
        result
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.cell().request_cancel();
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("handle", &self.handle)
            .finish()
    }
}

/// Yields once to the loop: the task goes to the back of the ready queue and
/// resumes after the tasks and fibers already waiting to run (the async twin
/// of [`fiberloop::yield_now`](crate::yield_now), as tokio's and asyncio's
/// `sleep(0)`), with the same bound: behind freshly spawned tasks, which are
/// queued ahead of older work, it waits for at most about 60 of them (see
/// [`fiberloop::yield_now`](crate::yield_now) for the exact rule).
///
/// ```
/// fiberloop::block_on(async {
///     let other = fiberloop::task::spawn(async { 1 });
///     fiberloop::task::yield_now().await;
///     assert!(other.is_finished(), "the spawned task ran while we yielded");
/// });
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`]: pending once (after waking itself), then ready.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
