//! [`RwLock`]: many readers or one writer, blocking fibers rather than threads.
//!
//! Writers are preferred: once a writer waits, new readers queue behind it,
//! so a stream of readers cannot starve a writer. Releases wake every waiter,
//! which re-checks; simple, and fine at the handful of waiters a lock has.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex as StdMutex;
use std::task::{Context, Poll};

use super::{block, lock, wake_all, Op, WaitOn, WaitQueue};
use crate::rt::wait::WaitError;

/// A reader-writer lock for fibers, tasks and threads.
pub struct RwLock<T: ?Sized> {
    state: StdMutex<State>,
    value: UnsafeCell<T>,
}

#[derive(Default)]
struct State {
    readers: usize,
    writer: bool,
    /// Writers waiting; while non-zero, new readers wait too.
    writers_waiting: usize,
    waiters: WaitQueue,
}

// SAFETY: the state admits either shared readers (`&T` on several threads:
// `T: Sync`) or one writer (`&mut T` moved between threads: `T: Send`).
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    /// An unlocked lock holding `value`.
    pub fn new(value: T) -> RwLock<T> {
        RwLock {
            state: StdMutex::default(),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, consuming the lock.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for reading, blocking while a writer holds or awaits the lock.
    ///
    /// # Errors
    /// [`WaitError`] if called while the fiber is unwinding, or a timeout scope expires.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, T>, WaitError> {
        block(
            &mut RwOp {
                lock: self,
                write: false,
                reg: None,
                counted: false,
            },
            None,
        )
        .map(|()| RwLockReadGuard { lock: self })
    }

    /// Locks for writing, blocking while anyone holds the lock.
    ///
    /// # Errors
    /// [`WaitError`] if called while the fiber is unwinding, or a timeout scope expires.
    pub fn write(&self) -> Result<RwLockWriteGuard<'_, T>, WaitError> {
        block(
            &mut RwOp {
                lock: self,
                write: true,
                reg: None,
                counted: false,
            },
            None,
        )
        .map(|()| RwLockWriteGuard { lock: self })
    }

    /// Reads if possible without waiting.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        let mut state = lock(&self.state);
        (!state.writer && state.writers_waiting == 0).then(|| {
            state.readers += 1;
            RwLockReadGuard { lock: self }
        })
    }

    /// Writes if possible without waiting.
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        let mut state = lock(&self.state);
        (!state.writer && state.readers == 0).then(|| {
            state.writer = true;
            RwLockWriteGuard { lock: self }
        })
    }

    /// The async face of [`read`](Self::read).
    pub async fn read_async(&self) -> RwLockReadGuard<'_, T> {
        let mut op = RwOp {
            lock: self,
            write: false,
            reg: None,
            counted: false,
        };
        std::future::poll_fn(|cx| op.poll_op(cx)).await;
        RwLockReadGuard { lock: self }
    }

    /// The async face of [`write`](Self::write).
    pub async fn write_async(&self) -> RwLockWriteGuard<'_, T> {
        let mut op = RwOp {
            lock: self,
            write: true,
            reg: None,
            counted: false,
        };
        std::future::poll_fn(|cx| op.poll_op(cx)).await;
        RwLockWriteGuard { lock: self }
    }

    fn release(&self, write: bool) {
        let mut state = lock(&self.state);
        if write {
            state.writer = false;
        } else {
            state.readers -= 1;
        }
        let waiters = if state.readers == 0 {
            state.waiters.take_all()
        } else {
            Vec::new()
        };
        drop(state);
        wake_all(waiters);
    }
}

/// A pending `read` or `write`.
struct RwOp<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    write: bool,
    reg: Option<u64>,
    /// This writer is counted in `writers_waiting`.
    counted: bool,
}

impl<T: ?Sized> Op for RwOp<'_, T> {
    type Output = ();

    fn wait_on(&self) -> WaitOn {
        WaitOn::RwLock {
            addr: std::ptr::from_ref(self.lock).cast::<u8>().addr(),
            write: self.write,
        }
    }

    fn poll_op(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = lock(&self.lock.state);
        let free = if self.write {
            !state.writer && state.readers == 0
        } else {
            !state.writer && state.writers_waiting == 0
        };
        if free {
            if self.write {
                state.writer = true;
                if std::mem::take(&mut self.counted) {
                    state.writers_waiting -= 1;
                }
            } else {
                state.readers += 1;
            }
            state.waiters.remove(&mut self.reg);
            return Poll::Ready(());
        }
        if self.write && !self.counted {
            self.counted = true;
            state.writers_waiting += 1;
        }
        state.waiters.register(&mut self.reg, cx.waker());
        Poll::Pending
    }
}

impl<T: ?Sized> Drop for RwOp<'_, T> {
    fn drop(&mut self) {
        if self.reg.is_none() && !self.counted {
            return;
        }
        let mut state = lock(&self.lock.state);
        state.waiters.remove(&mut self.reg);
        let waiters = if std::mem::take(&mut self.counted) {
            // A writer gave up: readers it held back may go now.
            state.writers_waiting -= 1;
            state.waiters.take_all()
        } else {
            Vec::new()
        };
        drop(state);
        wake_all(waiters);
    }
}

/// Shared access to a read-locked [`RwLock`].
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

/// Exclusive access to a write-locked [`RwLock`].
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: a read guard exists only while no writer holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the write guard is the only holder of the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write guard is the only holder; `&mut self` is exclusive.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.release(false);
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.release(true);
    }
}

impl<T: ?Sized> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock").finish_non_exhaustive()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}
