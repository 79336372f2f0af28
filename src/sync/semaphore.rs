//! [`Semaphore`]: a counted set of permits; acquiring blocks the fiber while
//! none is left.

use std::fmt;
use std::sync::Mutex as StdMutex;
use std::task::{Context, Poll};

use super::{block, lock, Op, WaitOn, WaitQueue};
use crate::rt::wait::WaitError;

/// A counting semaphore for fibers, tasks and threads.
///
/// ```
/// use std::rc::Rc;
/// use fiberloop::sync::Semaphore;
///
/// fiberloop::run(|| {
///     let slots = Rc::new(Semaphore::new(2)); // at most two at a time
///     let workers: Vec<_> = (0..5)
///         .map(|_| {
///             let slots = slots.clone();
///             fiberloop::spawn(move || {
///                 let _permit = slots.acquire().unwrap();
///                 fiberloop::sleep(std::time::Duration::from_millis(1));
///             })
///         })
///         .collect();
///     workers.into_iter().for_each(|w| w.join().unwrap());
///     assert_eq!(slots.available_permits(), 2);
/// });
/// ```
pub struct Semaphore {
    state: StdMutex<State>,
}

struct State {
    permits: usize,
    waiters: WaitQueue,
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            state: StdMutex::new(State {
                permits,
                waiters: WaitQueue::default(),
            }),
        }
    }

    /// Takes a permit, blocking while none is available; the permit goes back
    /// when the returned guard is dropped.
    ///
    /// # Errors
    /// [`WaitError`] if called while the fiber is unwinding, or a timeout scope expires.
    pub fn acquire(&self) -> Result<SemaphorePermit<'_>, WaitError> {
        block(
            &mut AcquireOp {
                semaphore: self,
                reg: None,
            },
            None,
        )
        .map(|()| SemaphorePermit { semaphore: self })
    }

    /// Takes a permit if one is available now.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        let mut state = lock(&self.state);
        (state.permits > 0 && state.waiters.is_empty()).then(|| {
            state.permits -= 1;
            SemaphorePermit { semaphore: self }
        })
    }

    /// The async face of [`acquire`](Self::acquire).
    pub async fn acquire_async(&self) -> SemaphorePermit<'_> {
        let mut op = AcquireOp {
            semaphore: self,
            reg: None,
        };
        std::future::poll_fn(|cx| op.poll_op(cx)).await;
        SemaphorePermit { semaphore: self }
    }

    /// Adds `n` permits (waking as many waiters).
    pub fn add_permits(&self, n: usize) {
        let mut state = lock(&self.state);
        state.permits += n;
        let woken: Vec<_> = (0..n)
            .map_while(|_| state.waiters.pop())
            .map(|(_, w)| w)
            .collect();
        drop(state);
        super::wake_all(woken);
    }

    /// Permits available now.
    pub fn available_permits(&self) -> usize {
        lock(&self.state).permits
    }
}

/// A pending `acquire`.
struct AcquireOp<'a> {
    semaphore: &'a Semaphore,
    reg: Option<u64>,
}

impl Op for AcquireOp<'_> {
    type Output = ();

    fn wait_on(&self) -> WaitOn {
        WaitOn::Other("a semaphore permit")
    }

    fn poll_op(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = lock(&self.semaphore.state);
        if state.permits > 0 {
            state.permits -= 1;
            state.waiters.remove(&mut self.reg);
            return Poll::Ready(());
        }
        state.waiters.register(&mut self.reg, cx.waker());
        Poll::Pending
    }
}

impl Drop for AcquireOp<'_> {
    fn drop(&mut self) {
        if self.reg.is_none() {
            return;
        }
        let mut state = lock(&self.semaphore.state);
        let was_queued = state.waiters.remove(&mut self.reg);
        // Woken for a permit we will not take: pass the turn on.
        let next = if !was_queued && state.permits > 0 {
            state.waiters.pop()
        } else {
            None
        };
        drop(state);
        if let Some((_, waker)) = next {
            waker.wake();
        }
    }
}

/// A permit of a [`Semaphore`]; released when dropped.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    semaphore: &'a Semaphore,
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken for good (it is not given back on drop).
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.semaphore.add_permits(1);
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("permits", &self.available_permits())
            .finish()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}
