//! [`Mutex`] and [`Condvar`] that block fibers (and tasks, and threads), not
//! the loop.
//!
//! # Implementation notes
//!
//! The lock word is an atomic: `LOCKED`, plus `WAITERS` while someone is
//! queued. Uncontended, `lock` is one compare-exchange and unlock one more.
//! When there are waiters, unlock hands the lock *directly* to the
//! longest-waiting one (`LOCKED` stays set, so no newcomer can barge in), which
//! is what keeps a waiter from starving behind a fiber that unlocks and locks
//! again in a loop. A waiter that gives up after being handed the lock passes
//! it on.
//!
//! There is no poisoning: a panicking fiber's guard unlocks as it unwinds, and
//! cancellation is an error returned by `lock` (so a cancelled fiber never holds
//! the lock it was waiting for).

use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex as StdMutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{block, deadline_after, lock, Op, WaitOn, WaitQueue};
use crate::rt::wait::WaitError;

const LOCKED: u8 = 1;
const WAITERS: u8 = 2;
/// `holder` while the lock passes to a woken waiter (no task holds it then).
const HANDING: u64 = 0;

/// A mutual-exclusion lock whose `lock` blocks only the calling fiber.
///
/// ```
/// use std::rc::Rc;
/// use fiberloop::sync::Mutex;
///
/// fiberloop::run(|| {
///     let total = Rc::new(Mutex::new(0));
///     let workers: Vec<_> = (0..4)
///         .map(|_| {
///             let total = total.clone();
///             fiberloop::spawn(move || {
///                 for _ in 0..100 {
///                     let mut t = total.lock().unwrap();
///                     fiberloop::yield_now(); // others run, but wait for the lock
///                     *t += 1;
///                 }
///             })
///         })
///         .collect();
///     workers.into_iter().for_each(|w| w.join().unwrap());
///     assert_eq!(*total.lock().unwrap(), 400);
/// });
/// ```
pub struct Mutex<T: ?Sized> {
    state: AtomicU8,
    /// Who took the lock last: a task id, 0 for a plain thread, `HANDING`
    /// between an unlock that hands the lock over and its taker. Read only
    /// by the fiber dump and the deadlock check (see `rt::diag`).
    holder: AtomicU64,
    queue: StdMutex<Queue>,
    value: UnsafeCell<T>,
}

#[derive(Default)]
struct Queue {
    waiters: WaitQueue,
    /// The waiter the lock was handed to on unlock, until it takes it.
    handed_to: Option<u64>,
}

// SAFETY: the lock word gives one guard at a time exclusive access to `value`,
// so sharing a `Mutex` only ever moves `T` between threads (hence `T: Send`).
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above: `&Mutex<T>` hands out `&mut T` to one holder at a time.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub fn new(value: T) -> Mutex<T> {
        Mutex {
            state: AtomicU8::new(0),
            holder: AtomicU64::new(0),
            queue: StdMutex::default(),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, blocking the fiber (or thread) while another holds the lock.
    ///
    /// # Errors
    /// [`WaitError::Cancelled`] if called while the fiber is unwinding,
    /// `TimedOut` inside an expired [`timeout`](crate::timeout) scope.
    pub fn lock(&self) -> Result<MutexGuard<'_, T>, WaitError> {
        self.lock_until(None)
    }

    /// Like [`lock`](Self::lock), giving up with `TimedOut` after `timeout`.
    ///
    /// # Errors
    /// See [`lock`](Self::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> Result<MutexGuard<'_, T>, WaitError> {
        self.lock_until(Some(deadline_after(timeout)))
    }

    fn lock_until(&self, deadline: Option<Instant>) -> Result<MutexGuard<'_, T>, WaitError> {
        if let Some(guard) = self.try_lock() {
            return Ok(guard);
        }
        block(
            &mut LockOp {
                mutex: self,
                reg: None,
            },
            deadline,
        )
    }

    /// Locks if no one holds the lock (or waits for it).
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| self.taken())
    }

    /// The guard of a lock just taken, recording the taker.
    #[inline]
    fn taken(&self) -> MutexGuard<'_, T> {
        self.holder
            .store(crate::rt::diag::current_task_id(), Ordering::Relaxed);
        MutexGuard { mutex: self }
    }

    /// The async face of [`lock`](Self::lock).
    pub fn lock_async(&self) -> Lock<'_, T> {
        Lock {
            op: LockOp {
                mutex: self,
                reg: None,
            },
        }
    }

    /// The value, through an exclusive borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return; // nobody waits
        }
        let mut queue = lock(&self.queue);
        match queue.waiters.pop() {
            Some((id, waker)) => {
                // Hand over: LOCKED stays set, so nobody can barge in.
                queue.handed_to = Some(id);
                self.holder.store(HANDING, Ordering::Relaxed);
                if queue.waiters.is_empty() {
                    self.state.store(LOCKED, Ordering::Release);
                }
                drop(queue);
                waker.wake();
            }
            None => self.state.store(0, Ordering::Release),
        }
    }
}

/// A pending `lock`: the poll function behind `lock` and `lock_async`.
struct LockOp<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    reg: Option<u64>,
}

impl<'a, T: ?Sized> Op for LockOp<'a, T> {
    type Output = MutexGuard<'a, T>;

    fn wait_on(&self) -> WaitOn {
        WaitOn::Mutex {
            holder: &self.mutex.holder,
        }
    }

    fn poll_op(&mut self, cx: &mut Context<'_>) -> Poll<MutexGuard<'a, T>> {
        let mutex = self.mutex;
        let mut queue = lock(&mutex.queue);
        if self.reg.is_some() && queue.handed_to == self.reg {
            queue.handed_to = None;
            self.reg = None;
            return Poll::Ready(mutex.taken());
        }
        queue.waiters.register(&mut self.reg, cx.waker());
        // Announce a waiter, then look again: an unlock that ran before the
        // announcement left the lock free for us.
        let previous = mutex.state.fetch_or(WAITERS, Ordering::Acquire);
        if previous & LOCKED == 0 {
            mutex.state.fetch_or(LOCKED, Ordering::Acquire);
            queue.waiters.remove(&mut self.reg);
            if queue.waiters.is_empty() {
                mutex.state.fetch_and(!WAITERS, Ordering::Relaxed);
            }
            return Poll::Ready(mutex.taken());
        }
        Poll::Pending
    }
}

impl<T: ?Sized> Drop for LockOp<'_, T> {
    fn drop(&mut self) {
        if self.reg.is_none() {
            return;
        }
        let mut queue = lock(&self.mutex.queue);
        if queue.handed_to == self.reg {
            // Handed the lock but giving up: pass it on.
            queue.handed_to = None;
            drop(queue);
            self.mutex.unlock();
            return;
        }
        queue.waiters.remove(&mut self.reg);
        if queue.waiters.is_empty() {
            self.mutex.state.fetch_and(!WAITERS, Ordering::Relaxed);
        }
    }
}

/// The future of [`Mutex::lock_async`].
#[must_use = "futures do nothing unless polled"]
pub struct Lock<'a, T: ?Sized> {
    op: LockOp<'a, T>,
}

impl<'a, T: ?Sized> Future for Lock<'a, T> {
    type Output = MutexGuard<'a, T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<MutexGuard<'a, T>> {
        if let Some(guard) = self.op.mutex.try_lock() {
            return Poll::Ready(guard);
        }
        let polled = self.op.poll_op(cx);
        if polled.is_pending() {
            // The holder as it is now: an async task keeps no pointer into
            // the mutex (its future may be dropped, with the mutex, while
            // the task runs on).
            let mutex = self.op.mutex;
            crate::rt::diag::note_pending(WaitOn::MutexSeen {
                addr: std::ptr::from_ref(&mutex.holder).addr(),
                holder: mutex.holder.load(Ordering::Relaxed),
            });
        }
        polled
    }
}

impl<T: ?Sized> Unpin for Lock<'_, T> {}

impl<T: ?Sized> fmt::Debug for Lock<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").finish_non_exhaustive()
    }
}

/// Access to a locked [`Mutex`]; unlocks when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this holder owns the lock.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_lock() {
            Some(guard) => f.debug_struct("Mutex").field("value", &&*guard).finish(),
            None => f.debug_struct("Mutex").field("value", &"<locked>").finish(),
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

/// A condition variable for [`Mutex`]: wait until notified, atomically
/// releasing the lock meanwhile.
///
/// Waiters are registered before the lock is released, so a notification sent
/// by the next holder of the lock is never lost.
#[derive(Default)]
pub struct Condvar {
    waiters: StdMutex<WaitQueue>,
}

impl Condvar {
    /// A condition variable with no waiters.
    pub fn new() -> Condvar {
        Condvar::default()
    }

    /// Releases `guard`'s lock, waits for a notification, and locks again.
    ///
    /// # Errors
    /// [`WaitError`] if called while the fiber is unwinding, or an enclosing timeout scope
    /// expires, while waiting (the lock is not held then).
    pub fn wait<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
    ) -> Result<MutexGuard<'a, T>, WaitError> {
        self.wait_until(guard, None).map(|(guard, _)| guard)
    }

    /// Waits like [`wait`](Self::wait) for at most `timeout`; the flag says
    /// whether it timed out (the lock is held again either way).
    ///
    /// # Errors
    /// [`WaitError::Cancelled`] if called while the fiber is unwinding.
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> Result<(MutexGuard<'a, T>, bool), WaitError> {
        self.wait_until(guard, Some(deadline_after(timeout)))
    }

    /// Waits until `condition` is false, re-checking it after each notification.
    ///
    /// # Errors
    /// See [`wait`](Self::wait).
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> Result<MutexGuard<'a, T>, WaitError> {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> Result<(MutexGuard<'a, T>, bool), WaitError> {
        let mutex = guard.mutex;
        let mut op = NotifiedOp {
            condvar: self,
            reg: None,
        };
        op.enqueue(); // before unlocking: no notification can slip between
        drop(guard);
        let timed_out = match block(&mut op, deadline) {
            Ok(()) => false,
            Err(WaitError::TimedOut) if deadline.is_some() => true,
            Err(e) => return Err(e),
        };
        drop(op);
        Ok((mutex.lock()?, timed_out))
    }

    /// Wakes one waiter, if any.
    pub fn notify_one(&self) {
        let waiter = lock(&self.waiters).pop();
        if let Some((_, waker)) = waiter {
            waker.wake();
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        let waiters = lock(&self.waiters).take_all();
        super::wake_all(waiters);
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}

/// Waiting for a notification: ready once a notify removed us from the queue.
struct NotifiedOp<'a> {
    condvar: &'a Condvar,
    reg: Option<u64>,
}

impl NotifiedOp<'_> {
    fn enqueue(&mut self) {
        lock(&self.condvar.waiters).register(&mut self.reg, std::task::Waker::noop());
    }
}

impl Op for NotifiedOp<'_> {
    type Output = ();

    fn wait_on(&self) -> WaitOn {
        WaitOn::Other("a condvar notification")
    }

    fn poll_op(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if lock(&self.condvar.waiters).refresh(self.reg, cx.waker()) {
            return Poll::Pending;
        }
        self.reg = None; // a notify took us out of the queue
        Poll::Ready(())
    }
}

impl Drop for NotifiedOp<'_> {
    fn drop(&mut self) {
        if self.reg.is_none() {
            return;
        }
        let mut waiters = lock(&self.condvar.waiters);
        if !waiters.remove(&mut self.reg) {
            // Notified but giving up: pass the notification on.
            let next = waiters.pop();
            drop(waiters);
            if let Some((_, waker)) = next {
                waker.wake();
            }
        }
    }
}
