//! Coordination: channels, locks and signals for fibers, async tasks, other
//! loops and plain threads alike.
//!
//! Every primitive here is a thread-safe state (a `std::sync::Mutex`, held for
//! a few instructions, never across a wait) plus a queue of
//! [`Waker`]s. Each blocking operation is written once, as a poll function:
//!
//! - a **fiber** runs it through the one waiting mechanism (`wait::block_on`),
//!   which parks only the fiber;
//! - an **async task** awaits the same poll function as a future (the `*_async`
//!   methods, or the `Future` types);
//! - a **plain thread** runs it through the same mechanism, which parks the
//!   thread.
//!
//! So a channel can connect a fiber on one loop, an async task on another and a
//! plain thread, and the primitives are `Send + Sync` when their contents are.
//!
//! Blocking calls honour cancellation: when a fiber is cancelled
//! ([`JoinHandle::cancel`](crate::JoinHandle::cancel)) a call that would block
//! returns [`Cancelled`](crate::Cancelled) instead (wrapped in the call's error
//! type), and inside [`timeout`](crate::timeout) it returns a timed-out error once
//! the deadline passes. A waiter that gives up (timeout, cancellation, a dropped
//! future) leaves the queue at once, so nothing is woken for nothing.

mod channel;
mod event;
mod mutex;
mod once;
mod rwlock;
mod select;
mod semaphore;

pub use crate::wait::WaitError;
pub use channel::{
    bounded, unbounded, IntoIter, Receiver, Recv, RecvError, RecvTimeoutError, Send, SendError,
    SendTimeoutError, Sender, TryRecvError, TrySendError,
};
pub use event::{Barrier, BarrierWaitResult, Event, WaitGroup};
pub use mutex::{Condvar, Mutex, MutexGuard};
pub use once::OnceCell;
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use select::{join_all, select_first, Select};
pub use semaphore::{Semaphore, SemaphorePermit};

use std::collections::VecDeque;
use std::sync::{MutexGuard as StdGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::wait;

/// Waiters of one kind, in arrival order. A waiter registers with an id kept
/// by its operation, so polling again updates its entry instead of adding one,
/// and giving up removes it.
#[derive(Debug, Default)]
pub(crate) struct WaitQueue {
    waiters: VecDeque<(u64, Waker)>,
    next_id: u64,
}

impl WaitQueue {
    /// Adds the waiter, or refreshes its waker if it is queued already.
    pub(crate) fn register(&mut self, id: &mut Option<u64>, waker: &Waker) {
        if let Some(current) = *id {
            if let Some((_, w)) = self.waiters.iter_mut().find(|(i, _)| *i == current) {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                return;
            }
        }
        self.next_id += 1;
        self.waiters.push_back((self.next_id, waker.clone()));
        *id = Some(self.next_id);
    }

    /// Refreshes a queued waiter's waker; false if it is no longer queued
    /// (a notifier took it out).
    pub(crate) fn refresh(&mut self, id: Option<u64>, waker: &Waker) -> bool {
        let Some(id) = id else { return false };
        match self.waiters.iter_mut().find(|(i, _)| *i == id) {
            Some((_, w)) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    /// Removes a waiter that gave up or was served; true if it was queued.
    pub(crate) fn remove(&mut self, id: &mut Option<u64>) -> bool {
        let Some(current) = id.take() else {
            return false;
        };
        match self.waiters.iter().position(|(i, _)| *i == current) {
            Some(index) => {
                self.waiters.remove(index);
                true
            }
            None => false,
        }
    }

    /// Takes the longest-waiting waiter (to wake it after unlocking).
    pub(crate) fn pop(&mut self) -> Option<(u64, Waker)> {
        self.waiters.pop_front()
    }

    /// Takes every waiter's waker.
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        self.waiters.drain(..).map(|(_, w)| w).collect()
    }

    /// Number of queued waiters.
    pub(crate) fn len(&self) -> usize {
        self.waiters.len()
    }

    /// True if no one waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}

/// Locks a primitive's state. A panic while it was held cannot leave it
/// inconsistent (every critical section is a few assignments), so poisoning is
/// ignored.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> StdGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wakes a batch of wakers (after the state lock is released).
pub(crate) fn wake_all(wakers: Vec<Waker>) {
    wakers.into_iter().for_each(Waker::wake);
}

/// One blocking operation, written as a poll function over its own state (its
/// queue registration, a value to send). Dropping it withdraws any
/// registration, so blocking calls, futures and `Select` share one cleanup.
pub(crate) trait Op {
    type Output;
    fn poll_op(&mut self, cx: &mut Context<'_>) -> Poll<Self::Output>;
}

/// Runs `op` to completion, blocking the fiber (or thread), until `deadline`.
pub(crate) fn block<O: Op>(op: &mut O, deadline: Option<Instant>) -> Result<O::Output, WaitError> {
    wait::block_on(deadline, |cx| op.poll_op(cx))
}

/// `Instant::now() + timeout`, saturating far in the future.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600))
}
