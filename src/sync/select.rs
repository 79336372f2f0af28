//! Waiting for the first of several things: [`Select`] over channel
//! operations and a timeout, [`select_first`] over fiber handles, and
//! [`join_all`] (gather) for all of them.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::channel::{RecvError, SendError};
use super::{deadline_after, Op, Receiver, Sender};
use crate::rt::wait::{self, WaitError, WaitOn};
use crate::task::{JoinError, JoinHandle};

/// One branch: its channel operation and what to do with the outcome.
trait Branch<R> {
    fn poll_branch(&mut self, cx: &mut Context<'_>) -> Poll<R>;
}

struct OpBranch<O, F> {
    op: O,
    then: Option<F>,
}

impl<O: Op, F: FnOnce(O::Output) -> R, R> Branch<R> for OpBranch<O, F> {
    fn poll_branch(&mut self, cx: &mut Context<'_>) -> Poll<R> {
        self.op
            .poll_op(cx)
            .map(|output| (self.then.take().expect("a branch fires once"))(output))
    }
}

/// Waits for the first ready of several channel operations, or a timeout, in
/// the spirit of crossbeam-channel's `Select` and Go's `select`.
///
/// Each branch names what to do with its outcome; [`wait`](Self::wait) blocks
/// the fiber (or thread) until one branch is ready, runs its closure and
/// returns the result. Branches are tried in a rotating order, so none is
/// starved. The value of a `send` branch that does not fire is dropped.
///
/// ```
/// use std::time::Duration;
/// use fiberloop::sync::{self, Select};
///
/// fiberloop::run(|| {
///     let (tx_a, rx_a) = sync::unbounded::<i32>();
///     let (_tx_b, rx_b) = sync::unbounded::<String>();
///     tx_a.send(7).unwrap();
///     let got = Select::new()
///         .recv(&rx_a, |m| format!("a: {}", m.unwrap()))
///         .recv(&rx_b, |m| format!("b: {}", m.unwrap()))
///         .timeout(Duration::from_millis(50), || "nothing".to_string())
///         .wait()
///         .unwrap();
///     assert_eq!(got, "a: 7");
/// });
/// ```
pub struct Select<'a, R> {
    branches: Vec<Box<dyn Branch<R> + 'a>>,
    timeout: Option<(Instant, Box<dyn FnOnce() -> R + 'a>)>,
}

impl<'a, R> Select<'a, R> {
    /// A select with no branches yet.
    pub fn new() -> Select<'a, R> {
        Select {
            branches: Vec::new(),
            timeout: None,
        }
    }

    /// A branch that receives from `receiver`; `then` gets the message, or
    /// `Err(RecvError::Disconnected)` once the channel is closed and drained.
    pub fn recv<T: 'a>(
        mut self,
        receiver: &'a Receiver<T>,
        then: impl FnOnce(Result<T, RecvError>) -> R + 'a,
    ) -> Self {
        self.branches.push(Box::new(OpBranch {
            op: receiver.recv_op(),
            then: Some(then),
        }));
        self
    }

    /// A branch that sends `value` on `sender`; `then` gets `Ok(())`, or the
    /// value back in `SendError::Disconnected` if every receiver is gone.
    pub fn send<T: 'a>(
        mut self,
        sender: &'a Sender<T>,
        value: T,
        then: impl FnOnce(Result<(), SendError<T>>) -> R + 'a,
    ) -> Self {
        self.branches.push(Box::new(OpBranch {
            op: sender.send_op(value),
            then: Some(then),
        }));
        self
    }

    /// A branch that fires if no other is ready within `timeout`.
    pub fn timeout(mut self, timeout: Duration, then: impl FnOnce() -> R + 'a) -> Self {
        self.timeout = Some((deadline_after(timeout), Box::new(then)));
        self
    }

    /// Blocks until a branch fires and returns its closure's result.
    ///
    /// # Errors
    /// [`WaitError::Cancelled`] if called while the fiber is unwinding, `TimedOut` if an
    /// enclosing timeout scope expires first (a `timeout` branch fires instead
    /// when its own deadline comes first).
    pub fn wait(mut self) -> Result<R, WaitError> {
        let deadline = self.timeout.as_ref().map(|(at, _)| *at);
        let start = next_start(self.branches.len());
        match wait::block_on(deadline, WaitOn::Other("a select"), |cx| {
            self.poll_branches(cx, start)
        }) {
            Ok(result) => Ok(result),
            Err(WaitError::TimedOut) if deadline.is_some_and(|at| crate::rt::sim::now() >= at) => {
                let (_, then) = self.timeout.take().expect("deadline came from it");
                self.branches.clear(); // withdraw from every channel first
                Ok(then())
            }
            Err(e) => Err(e),
        }
    }

    /// The async face of [`wait`](Self::wait): a timeout branch uses the loop's
    /// timers.
    pub async fn wait_async(mut self) -> R {
        let start = next_start(self.branches.len());
        let mut sleep = self
            .timeout
            .as_ref()
            .map(|(at, _)| crate::time::sleep_until(*at));
        let fired = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = self.poll_branches(cx, start) {
                return Poll::Ready(Some(result));
            }
            let timed_out = sleep
                .as_mut()
                .is_some_and(|sleep| std::pin::Pin::new(sleep).poll(cx).is_ready());
            if timed_out {
                Poll::Ready(None)
            } else {
                Poll::Pending
            }
        })
        .await;
        match fired {
            Some(result) => result,
            None => {
                let (_, then) = self.timeout.take().expect("the sleep came from it");
                self.branches.clear();
                then()
            }
        }
    }

    fn poll_branches(&mut self, cx: &mut Context<'_>, start: usize) -> Poll<R> {
        let n = self.branches.len();
        for i in 0..n {
            if let Poll::Ready(result) = self.branches[(start + i) % n].poll_branch(cx) {
                return Poll::Ready(result);
            }
        }
        Poll::Pending
    }
}

use std::future::Future as _;

/// Where to start trying branches, rotating so that none is starved.
fn next_start(branches: usize) -> usize {
    static ROTATION: AtomicUsize = AtomicUsize::new(0);
    ROTATION.fetch_add(1, Ordering::Relaxed) % branches.max(1)
}

impl<R> Default for Select<'_, R> {
    fn default() -> Self {
        Select::new()
    }
}

impl<R> fmt::Debug for Select<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("branches", &self.branches.len())
            .field("timeout", &self.timeout.is_some())
            .finish()
    }
}

/// Waits for every fiber and returns their results in the order given
/// (asyncio's `gather`, jQuery's `$.when`). Blocks the calling fiber (or
/// thread); async code can `.await` the handles instead.
pub fn join_all<T: 'static>(
    handles: impl IntoIterator<Item = JoinHandle<T>>,
) -> Vec<Result<T, JoinError>> {
    handles.into_iter().map(JoinHandle::join).collect()
}

/// Waits for the first of `handles` to finish: returns its index, its result,
/// and the other handles (still running, in their original order).
///
/// # Errors
/// [`WaitError`] if called while the fiber is unwinding (or a timeout scope
/// expires first); the handles are then dropped, detaching their fibers.
///
/// # Panics
/// If `handles` is empty.
#[allow(clippy::type_complexity)]
pub fn select_first<T: 'static>(
    mut handles: Vec<JoinHandle<T>>,
) -> Result<(usize, Result<T, JoinError>, Vec<JoinHandle<T>>), WaitError> {
    assert!(
        !handles.is_empty(),
        "select_first needs at least one handle"
    );
    let (index, result) = wait::block_on(
        None,
        WaitOn::Other("the first of several fibers to finish"),
        |cx| {
            for (i, handle) in handles.iter_mut().enumerate() {
                if let Poll::Ready(result) = std::pin::Pin::new(handle).poll(cx) {
                    return Poll::Ready((i, result));
                }
            }
            Poll::Pending
        },
    )?;
    drop(handles.remove(index)); // joined already
    Ok((index, result, handles))
}
