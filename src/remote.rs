//! [`RemoteHandle`]: reaching a loop from other threads (asyncio's
//! `call_soon_threadsafe`, tokio's `Handle::spawn`).
//!
//! Work sent from another thread goes into the loop's inbox (a mutex-guarded
//! queue, touched only when something is sent) and the loop's `mio::Waker` is
//! written only if the loop sleeps in `poll`. Once the loop has closed, calls
//! fail with `NotConnected` instead of queueing work that would never run.
//!
//! ```
//! let event_loop = fiberloop::EventLoop::new().unwrap();
//! let remote = event_loop.remote();
//! let worker = std::thread::spawn(move || {
//!     // From a plain thread: start a fiber on the loop and wait for it.
//!     let fiber = remote.spawn(|| fiberloop::current().id()).unwrap();
//!     fiber.join().unwrap()
//! });
//! let main_id = event_loop.run_until_complete(|| {
//!     fiberloop::sleep(std::time::Duration::from_millis(20));
//!     fiberloop::current().id()
//! });
//! assert_ne!(worker.join().unwrap(), main_id);
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;

use crate::rt::scheduler::{Core, RemoteJob, Shared};
use crate::task::{Body, JoinHandle, Task};

/// A `Send + Sync + Clone` handle to a loop, usable from any thread.
#[derive(Clone)]
pub struct RemoteHandle {
    shared: Arc<Shared>,
}

impl RemoteHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> RemoteHandle {
        RemoteHandle { shared }
    }

    /// Runs `f` on the loop's thread, as a callback queued after those already
    /// queued (FIFO with `call_soon`).
    ///
    /// # Errors
    /// `NotConnected` once the loop has closed.
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        self.shared
            .send(RemoteJob::Call(Box::new(f)))
            .map_err(|_| closed())
    }

    /// A dump of the loop (see [`Handle::dump`](crate::Handle::dump)), from
    /// any thread: the loop makes it at its next turn. From a fiber or
    /// callback of the same loop it is made at once.
    ///
    /// # Errors
    /// `NotConnected` once the loop has closed; `TimedOut` if the loop did
    /// not answer within `patience` (it is blocked, or busy for that long:
    /// `FIBERLOOP_BLOCKING_MS` finds out by what).
    pub fn dump(&self, patience: std::time::Duration) -> io::Result<String> {
        self.ask(patience, |core| core.dump(true))
    }

    /// The loop's metrics (see [`Handle::metrics`](crate::Handle::metrics)),
    /// from any thread, as [`dump`](Self::dump) asks for them.
    ///
    /// # Errors
    /// As [`dump`](Self::dump).
    pub fn metrics(
        &self,
        patience: std::time::Duration,
    ) -> io::Result<crate::runtime::LoopMetrics> {
        self.ask(patience, Core::metrics)
    }

    /// Runs `read` on the loop's thread (at once if that is this thread)
    /// and waits up to `patience` for its answer.
    fn ask<T: Send + 'static>(
        &self,
        patience: std::time::Duration,
        read: fn(&Core) -> T,
    ) -> io::Result<T> {
        let here = crate::rt::scheduler::with_core(|core| {
            Arc::ptr_eq(core.shared(), &self.shared).then(|| read(core))
        });
        if let Some(Some(answer)) = here {
            return Ok(answer);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        self.call_soon_threadsafe(move || {
            if let Some(answer) = crate::rt::scheduler::with_core(read) {
                let _ = tx.send(answer);
            }
        })?;
        rx.recv_timeout(patience).map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the loop did not answer within {patience:?}: it is blocked or busy \
                     (FIBERLOOP_BLOCKING_MS=<ms> reports what holds it)"
                ),
            )
        })
    }

    /// Spawns a fiber on the loop. The closure must be `Send` (it crosses to
    /// the loop's thread); once there it never moves again.
    ///
    /// # Errors
    /// `NotConnected` once the loop has closed.
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let closure = crate::task::closure(f);
        self.adopt(Body::NotStarted(closure), crate::stack::DEFAULT_STACK_SIZE)
            .map(JoinHandle::new)
    }

    /// Spawns a `Send` future as an async task on the loop. Dropping the
    /// returned [`Task`] cancels it, from any thread.
    ///
    /// # Errors
    /// `NotConnected` once the loop has closed.
    #[track_caller]
    pub fn spawn_future<F>(&self, future: F) -> io::Result<Task<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let future = crate::task::boxed_future(future);
        let cell = self.adopt(Body::Future(future), 0)?;
        Ok(Task::new(JoinHandle::new(cell)))
    }

    /// Hands a task to the loop, to be adopted there (fibers get a stack of
    /// `stack_size` bytes).
    #[track_caller]
    pub(crate) fn adopt(
        &self,
        body: Body,
        stack_size: usize,
    ) -> io::Result<Arc<crate::task::TaskCell>> {
        let location = std::panic::Location::caller();
        let cell = Core::remote_task(Some(&self.shared), body, stack_size, location);
        match self.shared.send(RemoteJob::Adopt(cell.clone())) {
            Ok(()) => Ok(cell),
            Err(_) => {
                // Never adopted: the body is dropped here, where it was made.
                cell.abandon();
                Err(closed())
            }
        }
    }
}

/// The error of a call on a loop (or runtime) that has closed.
pub(crate) fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the fiberloop event loop has closed",
    )
}

impl fmt::Debug for RemoteHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteHandle").finish_non_exhaustive()
    }
}
