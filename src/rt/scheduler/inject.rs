//! Work that other threads hand to a loop: the remote queue of tasks woken
//! elsewhere, the inbox of callbacks and adopted tasks, and the poller's
//! waker that interrupts `poll` when either gets something. `Shared` is the
//! only part of a loop other threads touch.

use std::mem;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_queue::SegQueue;

use super::gate::Gate;

use crate::rt::task::TaskCell;

/// The thread-safe half of a loop.
pub(crate) struct Shared {
    /// Tasks woken from other threads.
    pub(super) remote: SegQueue<Arc<TaskCell>>,
    /// Tokens of sources deregistered (from any thread) whose slot awaits release.
    pub(crate) released: SegQueue<usize>,
    /// True while the loop is (about to be) blocked in `poll`.
    pub(super) sleeping: AtomicBool,
    /// Interrupts `poll` when a remote wake arrives.
    pub(super) poller: mio::Waker,
    /// For registering and deregistering sources from any thread.
    pub(crate) registry: mio::Registry,
    /// Work handed in from other threads (`RemoteHandle`).
    pub(super) inbox: Mutex<Inbox>,
    /// Set after a push to `inbox`, so the loop need not lock it to look.
    pub(super) inbox_ready: AtomicBool,
    /// Closed when the loop has: a remote wake then drops its task at
    /// once, since no loop will drain the queue (and a task left in it would
    /// keep itself and this struct alive: a reference cycle); a runtime
    /// spawn is refused. See `gate`.
    pub(crate) closed: Gate,
    /// Unadopted tasks of a multi-loop runtime placed on this loop from
    /// other threads; any loop of the runtime may take them (see `group`).
    pub(super) queue: SegQueue<Arc<TaskCell>>,
    /// The thieves' end of the loop's own deque of unadopted tasks (those
    /// its own fibers spawned through the runtime).
    pub(super) stealer: crossbeam_deque::Stealer<Arc<TaskCell>>,
    /// This loop's live tasks, as it last published them (for placing).
    pub(super) load: AtomicUsize,
    /// Tasks this loop has stolen from others (written by the loop only).
    pub(crate) stolen: AtomicU64,
}

/// Work from other threads, until the loop closes.
pub(super) struct Inbox {
    pub(super) open: bool,
    pub(super) jobs: Vec<RemoteJob>,
}

/// One piece of work handed to a loop from another thread.
pub(crate) enum RemoteJob {
    /// A `call_soon_threadsafe` callback.
    Call(Box<dyn FnOnce() + Send>),
    /// A task built on another thread, to be adopted by the loop.
    Adopt(Arc<TaskCell>),
}

impl Shared {
    /// True while the loop is (about to be) asleep in `poll`.
    pub(crate) fn is_sleeping(&self) -> bool {
        self.sleeping.load(Ordering::Relaxed)
    }

    pub(super) fn push_remote(&self, task: Arc<TaskCell>) {
        if task.remote_queued.swap(true, Ordering::AcqRel) {
            return; // already on its way
        }
        // Either the loop's last drain sees this task, or this sees the loop
        // closed and drains (see `gate`); a refused task is dropped here.
        let pushed = self
            .closed
            .push(task, |task| self.remote.push(task), || self.drain_closed());
        if pushed.is_ok() {
            self.notify();
        }
    }

    /// The loop is closing: remote wakes from now on find no one to run
    /// them. Drops the tasks queued so far.
    pub(crate) fn close_remote(&self) {
        self.closed.close(|| {
            self.drain_closed();
            self.abandon_queued();
        });
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
    pub(super) fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            let _ = self.poller.wake();
        }
    }

    /// Takes the jobs handed in so far; with `close`, refuses later ones.
    pub(super) fn take_inbox(&self, close: bool) -> Vec<RemoteJob> {
        let mut inbox = crate::rt::lock::lock(&self.inbox);
        if close {
            inbox.open = false;
        }
        mem::take(&mut inbox.jobs)
    }

    pub(super) fn has_remote_work(&self) -> bool {
        !self.remote.is_empty()
            || self.inbox_ready.load(Ordering::Acquire)
            || !self.queue.is_empty()
            || !self.stealer.is_empty()
    }
}
