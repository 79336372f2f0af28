//! Signals: [`Event`] (asyncio's and gevent's), [`Barrier`], and Go's
//! [`WaitGroup`].

use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Context, Poll};
use std::time::Duration;

use super::{block, deadline_after, lock, wake_all, Op, Until, WaitOn, WaitQueue};
use crate::rt::wait::WaitError;

/// A flag that fibers and tasks can wait for: `set` wakes every waiter, and
/// waits return at once while it stays set, until `clear`.
///
/// ```
/// use std::rc::Rc;
/// use fiberloop::sync::Event;
///
/// fiberloop::run(|| {
///     let ready = Rc::new(Event::new());
///     let r = ready.clone();
///     let waiter = fiberloop::spawn(move || r.wait().is_ok());
///     ready.set();
///     assert!(waiter.join().unwrap());
/// });
/// ```
#[derive(Default)]
pub struct Event {
    state: StdMutex<EventState>,
}

#[derive(Default)]
struct EventState {
    set: bool,
    waiters: WaitQueue,
}

impl Event {
    /// An event that is not set.
    pub fn new() -> Event {
        Event::default()
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let mut state = lock(&self.state);
        state.set = true;
        let waiters = state.waiters.take_all();
        drop(state);
        wake_all(waiters);
    }

    /// Clears the flag; later waits block until the next `set`.
    pub fn clear(&self) {
        lock(&self.state).set = false;
    }

    /// True while the flag is set.
    pub fn is_set(&self) -> bool {
        lock(&self.state).set
    }

    fn until(&self) -> Until<'_, EventState> {
        Until::new(
            "an event to be set",
            &self.state,
            |s| s.set,
            |s| &mut s.waiters,
        )
    }

    /// Blocks until the flag is set.
    ///
    /// # Errors
    /// [`WaitError`] if called while the fiber is unwinding, or a timeout scope expires.
    pub fn wait(&self) -> Result<(), WaitError> {
        block(&mut self.until(), None)
    }

    /// Blocks until the flag is set or `timeout` passes (`TimedOut`).
    ///
    /// # Errors
    /// See [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        block(&mut self.until(), Some(deadline_after(timeout)))
    }

    /// The async face of [`wait`](Self::wait).
    pub async fn wait_async(&self) {
        let mut op = self.until();
        std::future::poll_fn(|cx| op.poll_op(cx)).await
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

/// A meeting point for `n` parties: each `wait` blocks until all `n` arrived,
/// then all go on (and the barrier can be used again).
pub struct Barrier {
    parties: usize,
    state: StdMutex<BarrierState>,
}

#[derive(Default)]
struct BarrierState {
    arrived: usize,
    generation: u64,
    waiters: WaitQueue,
}

/// What [`Barrier::wait`] returns: one party of each round is the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// True for exactly one party per round (the last to arrive).
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `parties` parties (0 behaves as 1).
    pub fn new(parties: usize) -> Barrier {
        Barrier {
            parties: parties.max(1),
            state: StdMutex::default(),
        }
    }

    /// Arrives and blocks until every party has.
    ///
    /// # Errors
    /// [`WaitError`] if called while the fiber is unwinding, or a timeout scope expires
    /// (this party then counts as not having arrived).
    pub fn wait(&self) -> Result<BarrierWaitResult, WaitError> {
        block(
            &mut BarrierOp {
                barrier: self,
                round: None,
                reg: None,
            },
            None,
        )
    }

    /// The async face of [`wait`](Self::wait).
    pub async fn wait_async(&self) -> BarrierWaitResult {
        let mut op = BarrierOp {
            barrier: self,
            round: None,
            reg: None,
        };
        std::future::poll_fn(|cx| op.poll_op(cx)).await
    }
}

struct BarrierOp<'a> {
    barrier: &'a Barrier,
    /// The round this party arrived in, once it has.
    round: Option<u64>,
    reg: Option<u64>,
}

impl Op for BarrierOp<'_> {
    type Output = BarrierWaitResult;

    fn wait_on(&self) -> WaitOn {
        WaitOn::Other("the other parties of a barrier")
    }

    fn poll_op(&mut self, cx: &mut Context<'_>) -> Poll<BarrierWaitResult> {
        let mut state = lock(&self.barrier.state);
        match self.round {
            None => {
                state.arrived += 1;
                if state.arrived == self.barrier.parties {
                    state.arrived = 0;
                    state.generation += 1;
                    let waiters = state.waiters.take_all();
                    drop(state);
                    wake_all(waiters);
                    return Poll::Ready(BarrierWaitResult(true));
                }
                self.round = Some(state.generation);
            }
            Some(round) if round != state.generation => {
                self.round = None;
                self.reg = None;
                return Poll::Ready(BarrierWaitResult(false));
            }
            Some(_) => {}
        }
        state.waiters.register(&mut self.reg, cx.waker());
        Poll::Pending
    }
}

impl Drop for BarrierOp<'_> {
    fn drop(&mut self) {
        let Some(round) = self.round else { return };
        let mut state = lock(&self.barrier.state);
        state.waiters.remove(&mut self.reg);
        if round == state.generation {
            state.arrived -= 1; // gave up before the round completed
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .finish()
    }
}

/// Go's `sync.WaitGroup`: `add` work, `done` it, and `wait` for the count to
/// reach zero. Clones share the same count.
///
/// ```
/// use fiberloop::sync::WaitGroup;
///
/// fiberloop::run(|| {
///     let wg = WaitGroup::new();
///     for _ in 0..3 {
///         wg.add(1);
///         let wg = wg.clone();
///         fiberloop::spawn(move || {
///             fiberloop::yield_now();
///             wg.done();
///         });
///     }
///     wg.wait().unwrap();
///     assert_eq!(wg.count(), 0);
/// });
/// ```
#[derive(Clone, Default)]
pub struct WaitGroup {
    inner: Arc<StdMutex<GroupState>>,
}

#[derive(Default)]
struct GroupState {
    count: usize,
    waiters: WaitQueue,
}

impl WaitGroup {
    /// A group with a count of zero.
    pub fn new() -> WaitGroup {
        WaitGroup::default()
    }

    /// Adds `n` to the count.
    pub fn add(&self, n: usize) {
        lock(&self.inner).count += n;
    }

    /// Subtracts one from the count, waking the waiters when it reaches zero.
    ///
    /// # Panics
    /// If the count is already zero (Go panics too: it is a bug).
    pub fn done(&self) {
        let mut state = lock(&self.inner);
        state.count = state
            .count
            .checked_sub(1)
            .expect("WaitGroup::done called more often than add");
        let waiters = if state.count == 0 {
            state.waiters.take_all()
        } else {
            Vec::new()
        };
        drop(state);
        wake_all(waiters);
    }

    /// The current count.
    pub fn count(&self) -> usize {
        lock(&self.inner).count
    }

    fn until(&self) -> Until<'_, GroupState> {
        Until::new(
            "a wait group to reach zero",
            &self.inner,
            |s| s.count == 0,
            |s| &mut s.waiters,
        )
    }

    /// Blocks until the count is zero.
    ///
    /// # Errors
    /// [`WaitError`] if called while the fiber is unwinding, or a timeout scope expires.
    pub fn wait(&self) -> Result<(), WaitError> {
        block(&mut self.until(), None)
    }

    /// The async face of [`wait`](Self::wait).
    pub async fn wait_async(&self) {
        let mut op = self.until();
        std::future::poll_fn(|cx| op.poll_op(cx)).await
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}
