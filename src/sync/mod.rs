//! Coordination: channels, locks and signals for fibers, async tasks, other
//! loops and plain threads alike.
//!
//! Every primitive here is a thread-safe state (behind a lock held for a few
//! instructions, never across a wait: a spin lock for channels, a
//! `std::sync::Mutex` for the rest) plus a queue of [`Waker`]s. Each blocking operation is written once, as a poll function:
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
//! Blocking calls honour cancellation: a cancelled fiber
//! ([`JoinHandle::cancel`](crate::JoinHandle::cancel)) unwinds from the call
//! it waits in; a call made while the fiber is unwinding (in a destructor)
//! cannot park and returns [`Cancelled`](crate::Cancelled) at once (wrapped in
//! the call's error type). Inside [`timeout`](crate::timeout) a call returns a
//! timed-out error once the deadline passes. A waiter that gives up (timeout, cancellation, a dropped
//! future) leaves the queue at once, so nothing is woken for nothing.

mod channel;
mod event;
mod mutex;
mod once;
mod rwlock;
mod select;
mod semaphore;

pub use crate::rt::wait::WaitError;
pub use channel::{
    bounded, unbounded, IntoIter, Receiver, RecvError, RecvFuture, RecvTimeoutError, SendError,
    SendFuture, SendTimeoutError, Sender, TryRecvError, TrySendError,
};
#[allow(deprecated)]
pub use channel::{Recv, Send};
pub use event::{Barrier, BarrierWaitResult, Event, WaitGroup};
pub use mutex::{Condvar, Mutex, MutexGuard};
pub use once::OnceCell;
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use select::{join_all, select_first, Select};
pub use semaphore::{Semaphore, SemaphorePermit};

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::rt::wait;
pub(crate) use crate::rt::wait::WaitOn;

/// Waiters of one kind, in arrival order.
///
/// Ids only grow, and waiters are woken from the front, so the queue is always
/// sorted by id: an id below the front's belongs to a waiter already woken
/// (answered at once, however many wait), and any other id is found by binary
/// search. Adding and waking are O(1); refreshing is O(log n); only a waiter
/// that gives up from the middle of the queue pays a shift. (A slab-backed
/// linked list did all of it in O(1) but cost twice the instructions on the
/// common path; a plain linear scan made a 1,000-sender fan-in quadratic.)
#[derive(Debug, Default)]
pub(crate) struct WaitQueue {
    waiters: VecDeque<(u64, Waker)>,
    next_id: u64,
}

impl WaitQueue {
    /// The position of a waiter that is still queued.
    #[inline]
    fn find(&self, id: Option<u64>) -> Option<usize> {
        let id = id?;
        let (front, back) = (self.waiters.front()?.0, self.waiters.back()?.0);
        if id < front || id > back {
            return None;
        }
        self.waiters.binary_search_by_key(&id, |(i, _)| *i).ok()
    }

    /// Adds the waiter, or refreshes its waker if it is queued already.
    #[inline]
    pub(crate) fn register(&mut self, id: &mut Option<u64>, waker: &Waker) {
        if self.refresh(*id, waker) {
            return;
        }
        self.next_id += 1;
        if crate::rt::sim::any_seeded() {
            // In a seeded simulation the queue's order is drawn: a new
            // waiter goes anywhere in it (the front unless this thread's
            // loop is the seeded one).
            let at = self.waiters.len() - crate::rt::sim::pick(self.waiters.len() + 1);
            self.waiters.insert(at, (self.next_id, waker.clone()));
        } else {
            self.waiters.push_back((self.next_id, waker.clone()));
        }
        *id = Some(self.next_id);
    }

    /// Refreshes a queued waiter's waker; false if it is no longer queued
    /// (a notifier took it out).
    #[inline]
    pub(crate) fn refresh(&mut self, id: Option<u64>, waker: &Waker) -> bool {
        let Some(index) = self.find(id) else {
            return false;
        };
        let (_, w) = &mut self.waiters[index];
        if !w.will_wake(waker) {
            *w = waker.clone();
        }
        true
    }

    /// Removes a waiter that gave up or was served; true if it was queued.
    #[inline]
    pub(crate) fn remove(&mut self, id: &mut Option<u64>) -> bool {
        let found = self.find(*id);
        *id = None;
        match found {
            Some(index) => {
                self.waiters.remove(index);
                true
            }
            None => false,
        }
    }

    /// Takes the longest-waiting waiter (to wake it after unlocking); in a
    /// seeded simulation (`fiberloop::sim`), one drawn from the seed.
    #[inline]
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

pub(crate) use crate::rt::lock::lock;

/// A lock for states held a few instructions at a time: acquiring is one
/// compare-exchange, releasing a plain store (a `std::sync::Mutex` pays a
/// second read-modify-write to release). Contended, it spins briefly, then
/// yields the thread.
pub(crate) struct SpinLock<T> {
    locked: std::sync::atomic::AtomicBool,
    value: std::cell::UnsafeCell<T>,
}

// SAFETY: the lock gives one guard at a time access to `value`.
unsafe impl<T: std::marker::Send> Sync for SpinLock<T> {}
// SAFETY: as above; the value moves with the lock.
unsafe impl<T: std::marker::Send> std::marker::Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: std::sync::atomic::AtomicBool::new(false),
            value: std::cell::UnsafeCell::new(value),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        use std::sync::atomic::Ordering;
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        SpinGuard { lock: self }
    }
}

/// Access to a [`SpinLock`]'s value; releases it when dropped.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> std::ops::Deref for SpinGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its holder owns the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> std::ops::DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock
            .locked
            .store(false, std::sync::atomic::Ordering::Release);
    }
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
    /// What a task blocked in this operation waits on (for the dump).
    fn wait_on(&self) -> WaitOn;
}

/// Waiting until `ready` holds for a primitive's state (an event set, a count
/// at zero, an initialization over): the one operation behind `Event::wait`,
/// `WaitGroup::wait` and `OnceCell`'s wait for another initializer.
pub(crate) struct Until<'a, S> {
    what: &'static str,
    state: &'a std::sync::Mutex<S>,
    ready: fn(&S) -> bool,
    waiters: fn(&mut S) -> &mut WaitQueue,
    reg: Option<u64>,
}

impl<'a, S> Until<'a, S> {
    pub(crate) fn new(
        what: &'static str,
        state: &'a std::sync::Mutex<S>,
        ready: fn(&S) -> bool,
        waiters: fn(&mut S) -> &mut WaitQueue,
    ) -> Until<'a, S> {
        Until {
            what,
            state,
            ready,
            waiters,
            reg: None,
        }
    }
}

impl<S> Op for Until<'_, S> {
    type Output = ();

    fn wait_on(&self) -> WaitOn {
        WaitOn::Other(self.what)
    }

    fn poll_op(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = lock(self.state);
        if (self.ready)(&state) {
            (self.waiters)(&mut state).remove(&mut self.reg);
            return Poll::Ready(());
        }
        (self.waiters)(&mut state).register(&mut self.reg, cx.waker());
        Poll::Pending
    }
}

impl<S> Drop for Until<'_, S> {
    fn drop(&mut self) {
        if self.reg.is_some() {
            (self.waiters)(&mut lock(self.state)).remove(&mut self.reg);
        }
    }
}

/// Polls `op` for a future (an async task's await), recording what the task
/// waits on when it is pending.
#[inline]
pub(crate) fn poll_noted<O: Op>(op: &mut O, cx: &mut Context<'_>) -> Poll<O::Output> {
    let polled = op.poll_op(cx);
    if polled.is_pending() {
        crate::rt::diag::note_pending(op.wait_on());
    }
    polled
}

/// Runs `op` to completion, blocking the fiber (or thread), until `deadline`.
#[inline]
pub(crate) fn block<O: Op>(op: &mut O, deadline: Option<Instant>) -> Result<O::Output, WaitError> {
    wait::block_on(deadline, op.wait_on(), |cx| op.poll_op(cx))
}

pub(crate) use crate::rt::lock::deadline_after;

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
