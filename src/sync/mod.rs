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

use std::sync::{MutexGuard as StdGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::wait;

/// Waiters of one kind, in arrival order: a doubly-linked list in a slab, so
/// adding, refreshing and removing a waiter are O(1) however many wait (a
/// thousand senders on one full channel is a normal fan-in).
///
/// A waiter's id is its slot plus the slot's generation, so the id of a waiter
/// that was woken (and whose slot was reused since) never names another.
#[derive(Debug, Default)]
pub(crate) struct WaitQueue {
    nodes: slab::Slab<Node>,
    head: Option<usize>,
    tail: Option<usize>,
    generation: u32,
}

#[derive(Debug)]
struct Node {
    waker: Waker,
    generation: u32,
    prev: Option<usize>,
    next: Option<usize>,
}

fn pack(slot: usize, generation: u32) -> u64 {
    ((generation as u64) << 32) | slot as u64
}

fn unpack(id: u64) -> (usize, u32) {
    ((id & u64::from(u32::MAX)) as usize, (id >> 32) as u32)
}

impl WaitQueue {
    /// The slot of a waiter that is still queued.
    fn find(&self, id: Option<u64>) -> Option<usize> {
        let (slot, generation) = unpack(id?);
        self.nodes
            .get(slot)
            .filter(|n| n.generation == generation)
            .map(|_| slot)
    }

    /// Adds the waiter, or refreshes its waker if it is queued already.
    pub(crate) fn register(&mut self, id: &mut Option<u64>, waker: &Waker) {
        if self.refresh(*id, waker) {
            return;
        }
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let slot = self.nodes.insert(Node {
            waker: waker.clone(),
            generation,
            prev: self.tail,
            next: None,
        });
        match self.tail {
            Some(tail) => self.nodes[tail].next = Some(slot),
            None => self.head = Some(slot),
        }
        self.tail = Some(slot);
        *id = Some(pack(slot, generation));
    }

    /// Refreshes a queued waiter's waker; false if it is no longer queued
    /// (a notifier took it out).
    pub(crate) fn refresh(&mut self, id: Option<u64>, waker: &Waker) -> bool {
        let Some(slot) = self.find(id) else {
            return false;
        };
        let node = &mut self.nodes[slot];
        if !node.waker.will_wake(waker) {
            node.waker = waker.clone();
        }
        true
    }

    /// Removes a waiter that gave up or was served; true if it was queued.
    pub(crate) fn remove(&mut self, id: &mut Option<u64>) -> bool {
        let found = self.find(*id);
        *id = None;
        match found {
            Some(slot) => {
                self.unlink(slot);
                true
            }
            None => false,
        }
    }

    fn unlink(&mut self, slot: usize) -> Waker {
        let node = self.nodes.remove(slot);
        match node.prev {
            Some(prev) => self.nodes[prev].next = node.next,
            None => self.head = node.next,
        }
        match node.next {
            Some(next) => self.nodes[next].prev = node.prev,
            None => self.tail = node.prev,
        }
        node.waker
    }

    /// Takes the longest-waiting waiter (to wake it after unlocking).
    pub(crate) fn pop(&mut self) -> Option<(u64, Waker)> {
        let slot = self.head?;
        let id = pack(slot, self.nodes[slot].generation);
        Some((id, self.unlink(slot)))
    }

    /// Takes every waiter's waker.
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        std::iter::from_fn(|| self.pop().map(|(_, w)| w)).collect()
    }

    /// Number of queued waiters.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if no one waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.is_empty()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_removal_and_stale_ids() {
        let mut q = WaitQueue::default();
        let waker = Waker::noop();
        let (mut a, mut b, mut c) = (None, None, None);
        q.register(&mut a, waker);
        q.register(&mut b, waker);
        q.register(&mut c, waker);
        q.register(&mut b, waker); // refresh: no new entry
        assert_eq!(q.len(), 3);
        assert!(q.remove(&mut b.clone()));
        let popped = q.pop().unwrap().0;
        assert_eq!(Some(popped), a, "FIFO");
        // `a` was popped; its slot may be reused, but its id names nothing.
        let mut d = None;
        q.register(&mut d, waker);
        assert!(!q.remove(&mut a.clone()), "a stale id removes nothing");
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop().unwrap().0, c.unwrap());
        assert_eq!(q.pop().unwrap().0, d.unwrap());
        assert!(q.is_empty() && q.pop().is_none());
    }
}
