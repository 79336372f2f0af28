//! Async time: [`sleep`], [`sleep_until`] and [`timeout`] for async tasks, on
//! the loop's timer heap (the same one the fibers' blocking `sleep` uses).
//!
//! Each future registers one timer with the waker it is polled with and
//! cancels it when dropped, so abandoned sleeps (a `timeout` whose inner future
//! won, a `select` that went the other way) leave nothing behind.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::rt::scheduler;
use crate::rt::timer::{TimerAction, TimerKey};

/// Waits until `duration` has passed (never less).
///
/// # Panics
/// When polled on a thread without a fiberloop event loop.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(deadline_after(duration))
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        timer: None,
    }
}

pub(crate) use crate::rt::lock::deadline_after;

/// The future of [`sleep`] and [`sleep_until`].
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    /// The timer set for the waker of the last poll: the loop's id, the key,
    /// and the waker it wakes. (An id, not a reference, keeps `Sleep` `Send`.)
    timer: Option<(u64, TimerKey, Waker)>,
}

impl Sleep {
    /// When this sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    fn cancel_timer(&mut self) {
        if let Some((loop_id, key, _)) = self.timer.take() {
            // Dropped elsewhere than on its loop, the timer just fires later
            // and wakes nobody who still cares.
            let action = scheduler::with_core(|core| {
                (core.id() == loop_id).then(|| core.timers.borrow_mut().cancel(key))
            });
            drop(action); // outside the borrow
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if crate::rt::sim::now() >= self.deadline {
            self.cancel_timer();
            return Poll::Ready(());
        }
        let current = self
            .timer
            .as_ref()
            .is_some_and(|(_, _, w)| w.will_wake(cx.waker()));
        if !current {
            self.cancel_timer();
            let core =
                scheduler::core().expect("fiberloop::time::sleep polled outside a fiberloop loop");
            let action = TimerAction::Wake(cx.waker().clone());
            let key = core.timers.borrow_mut().insert(self.deadline, action);
            self.timer = Some((core.id(), key, cx.waker().clone()));
        }
        crate::rt::diag::note_pending_until(crate::rt::diag::WaitOn::Sleep, Some(self.deadline));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel_timer();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// Runs `future` for at most `duration`: its output, or [`Elapsed`] once the
/// time is up, in which case the inner future is dropped (cancelled) at once.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future: Some(Box::pin(future)),
        sleep: sleep(duration),
    }
}

/// The future of [`timeout`].
#[must_use = "futures do nothing unless polled"]
pub struct Timeout<F> {
    future: Option<Pin<Box<F>>>,
    sleep: Sleep,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(future) = this.future.as_mut() else {
            return Poll::Ready(Err(Elapsed(())));
        };
        if let Poll::Ready(value) = future.as_mut().poll(cx) {
            this.future = None;
            return Poll::Ready(Ok(value));
        }
        if Pin::new(&mut this.sleep).poll(cx).is_ready() {
            this.future = None; // cancel the inner future now, not when we are dropped
            return Poll::Ready(Err(Elapsed(())));
        }
        Poll::Pending
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("deadline", &self.sleep.deadline)
            .finish()
    }
}

/// The error of a [`timeout`] (or of the blocking [`crate::timeout`] scope)
/// that ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl Elapsed {
    pub(crate) fn new() -> Elapsed {
        Elapsed(())
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline has elapsed")
    }
}
