//! Thread-pool offload: run a blocking call on a pool of OS threads while only
//! the caller waits (asyncio's `run_in_executor`/`to_thread`, tokio's
//! `spawn_blocking`).
//!
//! Each loop owns a `Pool`: threads start on demand up to a bound
//! ([`DEFAULT_MAX_THREADS`], or [`Handle::set_max_blocking_threads`]), an idle
//! thread exits after [`KEEP_ALIVE`], and jobs beyond the bound wait in FIFO
//! order. When the loop is dropped the pool shuts down: queued jobs are
//! dropped unrun (their waiters get an error), idle threads exit at once and
//! busy ones as soon as their job returns.
//!
//! [`unblock`] is the fiber face (the fiber parks; on a plain thread the call
//! simply runs there), [`unblock_async`] the async face (a future). Both wait
//! on one `Slot`, which the job fills on the pool thread. Name resolution
//! (`getaddrinfo` has no non-blocking form) goes through here, so
//! `TcpStream::connect("example.org:80")` never stalls the loop.
//!
//! [`Handle::set_max_blocking_threads`]: crate::Handle::set_max_blocking_threads

use std::any::Any;
use std::future::Future;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

use crate::rt::{scheduler, wait};
use crate::sync::lock;

use crate::rt::pool::Pool;
pub use crate::rt::pool::{DEFAULT_MAX_THREADS, KEEP_ALIVE};

/// What a job leaves for its waiter: the value, or the panic that ended it.
type Outcome<T> = Result<T, Box<dyn Any + Send>>;

/// Where a job leaves its outcome, and the waker of whoever waits for it.
struct Slot<T> {
    /// `None` while running; `Some(None)` if the job was dropped unrun.
    outcome: Mutex<Option<Option<Outcome<T>>>>,
    waker: AtomicWaker,
}

impl<T: Send + 'static> Slot<T> {
    /// Submits `f` to `pool`; the returned slot receives its outcome.
    fn start<F>(pool: &Pool, f: F) -> io::Result<Arc<Slot<T>>>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let slot = Arc::new(Slot {
            outcome: Mutex::new(None),
            waker: AtomicWaker::new(),
        });
        let guard = Filler {
            slot: slot.clone(),
            outcome: None,
        };
        pool.submit(Box::new(move || {
            let mut guard = guard;
            guard.outcome = Some(panic::catch_unwind(AssertUnwindSafe(f)));
        }))?;
        Ok(slot)
    }

    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.waker.register(cx.waker());
        match lock(&self.outcome).take() {
            None => Poll::Pending,
            Some(Some(Ok(value))) => Poll::Ready(Ok(value)),
            Some(Some(Err(payload))) => panic::resume_unwind(payload),
            Some(None) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the blocking call was dropped unrun: its pool shut down",
            ))),
        }
    }
}

/// Fills the slot when the job ends, runs or not: a job dropped unrun (the
/// pool shut down) still wakes its waiter, with an error.
struct Filler<T> {
    slot: Arc<Slot<T>>,
    outcome: Option<Outcome<T>>,
}

impl<T> Drop for Filler<T> {
    fn drop(&mut self) {
        *lock(&self.slot.outcome) = Some(self.outcome.take());
        self.slot.waker.wake();
    }
}

/// The pool of the loop running on this thread, if any.
fn loop_pool() -> Option<Pool> {
    scheduler::with_core(|core| core.blocking.clone())
}

/// Runs `f` on the loop's pool of threads and waits for its result: the
/// calling fiber parks while other fibers run. On a plain thread (no loop)
/// `f` simply runs there, since blocking that thread is fine.
///
/// A panic in `f` is re-raised in the caller, as an exception raised in
/// asyncio's executor is.
///
/// ```
/// fiberloop::run(|| {
///     // A CPU-heavy or blocking call, off the loop's thread.
///     let digest = fiberloop::unblock(|| (1..=20u64).product::<u64>()).unwrap();
///     assert_eq!(digest, 2_432_902_008_176_640_000);
/// });
/// ```
///
/// # Errors
/// If the pool cannot start a thread, it has shut down, or the fiber is
/// cancelled meanwhile (the call then finishes on its thread and its result is
/// dropped).
///
/// # Panics
/// On a loop thread outside any fiber (use [`unblock_async`] in async tasks).
pub fn unblock<T, F>(f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let Some(_core) = wait::fiber_core() else {
        return Ok(f()); // a plain thread may block
    };
    let pool = loop_pool().expect("a fiber runs on a loop");
    let slot = Slot::start(&pool, f)?;
    wait::block_on(None, wait::WaitOn::Pool, |cx| slot.poll_take(cx))?
}

/// Runs `f` on a pool of threads; the future completes with its result (the
/// async face of [`unblock`]). On a loop's thread the loop's pool runs it,
/// elsewhere a process-wide pool does.
///
/// ```
/// let n = fiberloop::block_on(async {
///     fiberloop::unblock_async(|| std::fs::read_dir(".").map(|d| d.count()))
///         .await
///         .unwrap()
/// });
/// assert!(n.unwrap() > 0);
/// ```
pub fn unblock_async<T, F>(f: F) -> Unblock<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let slot = match loop_pool() {
        Some(pool) => Slot::start(&pool, f),
        None => Slot::start(Pool::global(), f),
    };
    Unblock { slot: Some(slot) }
}

/// The future of [`unblock_async`]: the call's result, or why there is none.
#[must_use = "futures do nothing unless awaited"]
pub struct Unblock<T> {
    slot: Option<io::Result<Arc<Slot<T>>>>,
}

impl<T: Send + 'static> Future for Unblock<T> {
    type Output = io::Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.slot.as_ref().expect("Unblock polled after completion") {
            Ok(slot) => {
                let result = slot.poll_take(cx);
                if result.is_ready() {
                    self.slot = None;
                } else {
                    crate::rt::diag::note_pending(crate::rt::diag::WaitOn::Pool);
                }
                result
            }
            Err(_) => match self.slot.take() {
                Some(Err(e)) => Poll::Ready(Err(e)),
                _ => unreachable!("matched Err above"),
            },
        }
    }
}

impl<T> std::fmt::Debug for Unblock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unblock").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Condvar;
    use std::time::{Duration, Instant};

    fn wait_until(cond: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    #[test]
    fn the_pool_never_exceeds_its_bound_and_runs_every_job() {
        let pool = Pool::new();
        pool.set_max_threads(3);
        let (running, peak, done) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        for _ in 0..20 {
            let (running, peak, done) = (running.clone(), peak.clone(), done.clone());
            pool.submit(Box::new(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
                running.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
            }))
            .unwrap();
        }
        assert!(wait_until(|| done.load(Ordering::SeqCst) == 20));
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(pool.threads() <= 3);
        pool.shutdown();
        assert!(
            wait_until(|| pool.threads() == 0),
            "idle threads exit on shutdown"
        );
    }

    #[test]
    fn shutdown_drops_queued_jobs_and_refuses_new_ones() {
        let pool = Pool::new();
        pool.set_max_threads(1);
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let g = gate.clone();
        pool.submit(Box::new(move || {
            let mut open = lock(&g.0);
            while !*open {
                open = g.1.wait(open).unwrap();
            }
        }))
        .unwrap();
        let queued = Slot::start(&pool, || 7).unwrap();
        pool.shutdown();
        let waker = std::task::Waker::noop();
        let result = queued.poll_take(&mut Context::from_waker(waker));
        let Poll::Ready(Err(e)) = result else {
            panic!("a queued job is dropped unrun at shutdown")
        };
        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
        assert!(
            Slot::start(&pool, || 1).is_err(),
            "closed pools refuse work"
        );
        *lock(&gate.0) = true;
        gate.1.notify_all();
        assert!(
            wait_until(|| pool.threads() == 0),
            "the busy thread exits after its job"
        );
    }
}
