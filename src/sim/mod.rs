//! Deterministic testing: a loop run as a simulation, with virtual time and,
//! given a seed, a seeded schedule that the same seed replays exactly.
//!
//! - **Virtual time.** The loop's clock ([`now`], `Handle::time`, and what
//!   `sleep`, timeouts, `call_later`, `timeout` scopes and `time::sleep`
//!   measure against) stands still while anything can run. When every
//!   task is blocked on timers or on the loop's own primitives (channels,
//!   locks, events, joins: Go's "durably blocked"), it jumps to the next
//!   timer at once. A one-hour sleep takes microseconds.
//!   `std::time::Instant::now()` stays real.
//! - **A seeded schedule.** With a seed, which ready task runs next, and
//!   which waiter a channel, lock or event wakes, is drawn from the seed
//!   instead of first come, first served. Callbacks keep their order among
//!   themselves.
//! - **Outside the bubble.** Real sockets, the thread pool (`unblock`),
//!   signals and subprocesses: while a task waits on one of them, virtual
//!   time stands still and the loop sleeps until its event comes. For
//!   network code, use the in-memory [`pair`] and [`Listener`] instead.
//! - **A deadlock** (every task blocked, no timer) ends the run with a
//!   panic that names it, with the dump of every task.
//!
//! ```
//! use std::time::Duration;
//!
//! // An hour of sleep, in virtual time.
//! let run = fiberloop::sim::Sim::new().run(|| {
//!     fiberloop::sleep(Duration::from_secs(3600));
//!     7
//! });
//! assert_eq!(run.value, 7);
//! assert_eq!(run.elapsed, Duration::from_secs(3600));
//! ```
//!
//! [`check`] runs a test body under many seeds and names the one that
//! fails; `docs/testing.md` shows how to test your own code this way.

mod net;

pub use net::{pair, Connector, Listener, Stream};

use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::EventLoop;

/// The loop's clock: virtual time in a simulation, `Instant::now()`
/// elsewhere (the same as [`Handle::time`](crate::Handle::time)).
pub fn now() -> Instant {
    crate::rt::sim::now()
}

/// A simulation to run: virtual time, and a seeded schedule if
/// [`seed`](Sim::seed) says so (FIFO otherwise, as a normal loop).
#[derive(Debug, Clone, Default)]
pub struct Sim {
    seed: Option<u64>,
}

/// What a simulation's run gave back.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Outcome<T> {
    /// What the main fiber returned.
    pub value: T,
    /// The order the tasks ran in, one entry per run: each task by its
    /// number in order of first run (0 is the main fiber). The same seed
    /// gives the same order.
    pub order: Vec<usize>,
    /// Virtual time from the start of the run to its end.
    pub elapsed: Duration,
    /// The seed the schedule was drawn from, if any.
    pub seed: Option<u64>,
}

impl Sim {
    /// A simulation with virtual time and the FIFO schedule.
    pub fn new() -> Sim {
        Sim::default()
    }

    /// Draws the schedule from `seed`.
    pub fn seed(mut self, seed: u64) -> Sim {
        self.seed = Some(seed);
        self
    }

    /// Runs `f` as the main fiber of a new simulated loop on this thread
    /// (as [`run`](crate::run) does), and drives it until `f` returns.
    ///
    /// # Panics
    /// If `f` panics (re-raised), if the simulation deadlocks (every task
    /// blocked, no timer), or if this thread already has a loop.
    #[track_caller]
    pub fn run<F, T>(self, f: F) -> Outcome<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let event_loop = EventLoop::builder()
            .virtual_time(true)
            .seed(self.seed)
            .stall_report_after(None)
            .build()
            .unwrap_or_else(|e| panic!("fiberloop::sim: {e}"));
        let start = now();
        let value = event_loop.run_until_complete(f);
        let elapsed = now() - start;
        let mut first_seen: Vec<u64> = Vec::new();
        let order = crate::rt::sim::take_runs()
            .into_iter()
            .map(|id| match first_seen.iter().position(|&seen| seen == id) {
                Some(at) => at,
                None => {
                    first_seen.push(id);
                    first_seen.len() - 1
                }
            })
            .collect();
        drop(event_loop);
        Outcome {
            value,
            order,
            elapsed,
            seed: self.seed,
        }
    }
}

/// Runs `body` in a seeded simulation once per seed, for seeds `1..=seeds`,
/// or only for the seed `FIBERLOOP_SEED` names. Stops at the first failure
/// with a panic that names its seed, so that `FIBERLOOP_SEED=<seed>`
/// replays it exactly.
///
/// # Panics
/// When `body` fails (panics, or deadlocks) under a seed; when
/// `FIBERLOOP_SEED` is not a number.
#[track_caller]
pub fn check<F>(seeds: u64, body: F)
where
    F: Fn() + 'static,
{
    let pinned = std::env::var("FIBERLOOP_SEED").ok().map(|value| {
        value
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("fiberloop::sim: FIBERLOOP_SEED={value:?} is not a number"))
    });
    let body = Rc::new(body);
    let seeds: Vec<u64> = match pinned {
        Some(seed) => vec![seed],
        None => (1..=seeds).collect(),
    };
    for seed in seeds {
        let body = body.clone();
        let run = panic::catch_unwind(AssertUnwindSafe(|| {
            Sim::new().seed(seed).run(move || body())
        }));
        if let Err(payload) = run {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(a panic without a message)");
            panic!(
                "fiberloop::sim::check: failed with seed {seed} (replay it with FIBERLOOP_SEED={seed}): {message}"
            );
        }
    }
}
