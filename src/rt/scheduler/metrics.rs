//! A loop's metrics, in the spirit of tokio's `RuntimeMetrics`: counters the
//! loop keeps always (a few owner-only increments: per turn, per poll, per
//! wake, per finished task) and the figures read off its state when asked.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::Core;

/// The loop's own counters (owner thread only).
pub(crate) struct Counters {
    started: Instant,
    pub(super) turns: Cell<u64>,
    pub(super) polls_with_events: Cell<u64>,
    pub(super) polls_empty: Cell<u64>,
    pub(super) finished: Cell<u64>,
    pub(super) wakes_local: Cell<u64>,
    pub(super) wakes_remote: Cell<u64>,
    /// Time spent asleep in `poll` with a timeout other than zero.
    pub(super) idle: Cell<Duration>,
}

impl Counters {
    pub(super) fn new() -> Counters {
        Counters {
            started: Instant::now(),
            turns: Cell::new(0),
            polls_with_events: Cell::new(0),
            polls_empty: Cell::new(0),
            finished: Cell::new(0),
            wakes_local: Cell::new(0),
            wakes_remote: Cell::new(0),
            idle: Cell::new(Duration::ZERO),
        }
    }
}

/// Adds one to a counter.
#[inline(always)]
pub(super) fn bump(counter: &Cell<u64>) {
    counter.set(counter.get() + 1);
}

/// A snapshot of one loop's metrics (from [`Handle::metrics`](crate::Handle::metrics)).
///
/// Counters count from the loop's creation. A task is *spawned* when it
/// enters the loop's table of live tasks (spawned there, or handed in from
/// another thread or loop), *finished* when it leaves it (returned,
/// panicked or cancelled).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopMetrics {
    /// Looks at the outside world (remote wakes, I/O, timers): one per
    /// batch of at most 61 ready items, or when nothing is ready.
    pub turns: u64,
    /// Calls to the poller that returned events.
    pub polls_with_events: u64,
    /// Calls to the poller that returned none (a timeout, or an interruption).
    pub polls_empty: u64,
    /// Tasks (fibers and async tasks) spawned on, or adopted by, this loop.
    pub tasks_spawned: u64,
    /// Tasks that left it.
    pub tasks_finished: u64,
    /// Tasks alive now.
    pub tasks_alive: usize,
    /// Wakes made on the loop's own thread that queued a task.
    pub wakes_local: u64,
    /// Wakes that came from other threads.
    pub wakes_remote: u64,
    /// Items (tasks and callbacks) ready to run now.
    pub ready_depth: usize,
    /// Time since the loop was created less the time it slept in the poller.
    pub busy: Duration,
    /// Time since the loop was created.
    pub age: Duration,
    /// Fiber stacks mapped now, in the whole process (fibers', idle ones,
    /// generators').
    pub live_stacks: usize,
    /// How many more stacks may be mapped before the `vm.max_map_count`
    /// limit refuses them (docs/architecture.md: two mappings per stack).
    pub stack_headroom: usize,
}

impl Core {
    /// The loop's metrics now.
    pub(crate) fn metrics(&self) -> LoopMetrics {
        let c = &self.metrics;
        let alive = self.task_count();
        let age = c.started.elapsed();
        let live = crate::sys::stack::live_stacks();
        LoopMetrics {
            turns: c.turns.get(),
            polls_with_events: c.polls_with_events.get(),
            polls_empty: c.polls_empty.get(),
            tasks_spawned: c.finished.get() + alive as u64,
            tasks_finished: c.finished.get(),
            tasks_alive: alive,
            wakes_local: c.wakes_local.get(),
            wakes_remote: c.wakes_remote.get(),
            ready_depth: self.ready.borrow().len(),
            busy: age.saturating_sub(c.idle.get()),
            age,
            live_stacks: live,
            stack_headroom: crate::sys::stack::stack_limit().saturating_sub(live),
        }
    }
}
