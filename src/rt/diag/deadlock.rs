//! The deadlock check and the stall report, run when the loop is about to
//! sleep.
//!
//! **Deadlock** is claimed only where it is provable: a cycle in the
//! wait-for graph of this loop's parked fibers, whose edges are "waits, with
//! no deadline, for the mutex held by" and "joins, with no deadline". A
//! mutex is released only by its holder and a task finishes only by running,
//! so a cycle of parked fibers can never move, whatever other threads do
//! (short of cancelling one of them). Only a fiber's record is exact enough
//! to be an edge (an async task's is what its future last saw); an async
//! task can be the holder at the end of one. The check runs only while some
//! fiber is parked on a mutex (a counter the parking fiber keeps), when the
//! loop is about to sleep, at most every `GRAPH_EVERY`: so a cycle is found
//! even while timers and sockets keep the loop alive, and a busy server
//! whose fibers wait on sockets pays nothing. A loop that would sleep
//! forever while a check is not yet due sleeps only until it is. (A cycle of
//! joins alone, with no mutex in it, is left to the stall report.) Finding
//! one prints the report and ends `run`, whose caller panics with it (Go
//! ends the program with "all goroutines are asleep - deadlock!").
//!
//! **Stall** is the fallback where nothing is provable: the loop has been
//! idle for the quiet period with no timer set, and every parked task waits
//! on an in-process primitive (a channel, an event, a lock held outside the
//! loop) that no I/O, timer or pool job of this loop will end. Another
//! thread may still end it, so this is a report, not a verdict: `run` goes on.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::WaitOn;
use crate::rt::scheduler::{Core, TaskState, TaskView};

/// How often, at most, the wait-for graph is built while the loop still
/// has timers or I/O to sleep on and some task is parked on a lock.
const GRAPH_EVERY: Duration = Duration::from_millis(250);

/// What the checks remember between turns.
#[derive(Default)]
pub(crate) struct Checks {
    last_graph: Cell<Option<Instant>>,
    /// When the current spell of sleeping with no timer and nothing
    /// happening began.
    quiet_since: Cell<Option<Instant>>,
    stall_reported: Cell<bool>,
    found: Cell<bool>,
    report: RefCell<Option<String>>,
}

impl Checks {
    /// A deadlock was found: `run` must end.
    #[inline]
    pub(crate) fn found(&self) -> bool {
        self.found.get()
    }

    /// Records a deadlock found elsewhere (a simulation's): `run` ends with
    /// `report`.
    pub(crate) fn declare(&self, report: String) {
        self.report.replace(Some(report));
        self.found.set(true);
    }

    /// The deadlock report, once (the loop may be run again afterwards).
    pub(crate) fn take_report(&self) -> Option<String> {
        self.found.set(false);
        self.report.take()
    }
}

/// What the deadlock check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// No cycle, or no check needed.
    Clear,
    /// A check is due in this long (the loop should not sleep longer).
    Due(Duration),
    /// A cycle: reported, and `run` must end.
    Found,
}

impl Core {
    /// The loop is about to sleep for `timeout` (`None`: until an event).
    /// Returns `None` if a deadlock was found (`run` must end), else how
    /// long to sleep and whether this is a quiet sleep the stall report
    /// watches (see [`after_quiet_sleep`](Self::after_quiet_sleep)).
    pub(crate) fn before_sleep(
        &self,
        timeout: Option<Duration>,
    ) -> Option<(Option<Duration>, bool)> {
        let forever = timeout.is_none();
        let mut timeout = timeout;
        let at_most = |t: Option<Duration>, d: Duration| Some(t.map_or(d, |t| t.min(d)));
        match self.check_deadlock() {
            Verdict::Found => return None,
            // Wake for the next look while tasks are parked on locks.
            Verdict::Due(due) => timeout = at_most(timeout, due),
            Verdict::Clear => {}
        }
        let checks = &self.diag.checks;
        let quiet = if forever {
            self.stall_quiet_period()
        } else {
            None
        };
        let Some(quiet) = quiet else {
            checks.quiet_since.set(None);
            return Some((timeout, false));
        };
        let clock = self.diag.clock.get();
        let since = *checks.quiet_since.get().get_or_insert(clock);
        checks.quiet_since.set(Some(since));
        let left = quiet.saturating_sub(clock.saturating_duration_since(since));
        Some((at_most(timeout, left.max(Duration::from_millis(1))), true))
    }

    /// Looks for a wait-for cycle if a task is parked on a lock and the
    /// last look is `GRAPH_EVERY` old.
    fn check_deadlock(&self) -> Verdict {
        let checks = &self.diag.checks;
        if self.diag.lock_waits.get() == 0 {
            return Verdict::Clear;
        }
        let now = Instant::now();
        if let Some(at) = checks.last_graph.get() {
            let since = now.saturating_duration_since(at);
            if since < GRAPH_EVERY {
                return Verdict::Due(GRAPH_EVERY - since);
            }
        }
        checks.last_graph.set(Some(now));
        let views = self.task_views();
        let Some(cycle) = find_cycle(&views) else {
            return Verdict::Due(GRAPH_EVERY);
        };
        let mut report = format!(
            "fiberloop: deadlock on loop {}: these tasks wait for each other, and nothing can wake them:\n",
            self.id()
        );
        for &i in &cycle {
            let view = &views[i];
            let wait = view.wait.expect("a task in the cycle waits");
            report.push_str(&format!(
                "  {} waits for {}\n",
                super::dump::title(view),
                super::dump::describe(self, &views, &wait.on)
            ));
        }
        report.push_str(&self.dump(true));
        // No cycle survives the report: its tasks unwind (releasing their
        // locks) whenever the loop runs them next.
        for &i in &cycle {
            views[i].task.request_cancel();
        }
        checks.report.replace(Some(report));
        checks.found.set(true);
        Verdict::Found
    }

    /// The stall report's quiet period, if it is on and tasks are alive.
    fn stall_quiet_period(&self) -> Option<Duration> {
        let quiet = self.diag.config.get().stall?;
        (self.task_count() > 0).then_some(quiet)
    }

    /// After a quiet sleep: `nothing_happened` if it ended with no event
    /// and nothing to run. Reports once per quiet spell that lasts the
    /// quiet period.
    pub(crate) fn after_quiet_sleep(&self, nothing_happened: bool) {
        let checks = &self.diag.checks;
        if !nothing_happened {
            checks.quiet_since.set(None);
            checks.stall_reported.set(false);
            return;
        }
        let quiet = self.diag.config.get().stall.unwrap_or_default();
        let spell = checks.quiet_since.get().map_or(Duration::ZERO, |since| {
            self.diag.clock.get().saturating_duration_since(since)
        });
        if spell < quiet {
            return;
        }
        // Look once per quiet period: the next look is a period away.
        checks.quiet_since.set(Some(self.diag.clock.get()));
        if checks.stall_reported.get() {
            return;
        }
        let views = self.task_views();
        let parked = views
            .iter()
            .filter(|v| v.state == TaskState::Parked)
            .count();
        let stuck = |v: &TaskView| {
            v.state != TaskState::Parked
                || v.wait
                    .is_some_and(|w| !w.on.is_external() && w.until.is_none())
        };
        if parked == 0 || !views.iter().all(stuck) {
            return;
        }
        checks.stall_reported.set(true);
        let quiet_for = spell;
        let others = if self.group_index().is_some() {
            "another thread or another loop of the runtime"
        } else {
            "another thread"
        };
        eprintln!(
            "fiberloop: stall on loop {}: idle for {:.1} s with {} parked, no timer, \
             and no I/O, pool job or signal that could wake them. Unless {others} wakes one, \
             this is a deadlock (set FIBERLOOP_STALL_MS=0 to silence this report).\n{}",
            self.id(),
            quiet_for.as_secs_f64(),
            super::dump::plural(parked, "task"),
            self.dump(true)
        );
    }
}

/// The edge out of a parked fiber in the wait-for graph: the task it waits
/// for, if it waits without a deadline on a mutex or a join.
fn waits_for(view: &TaskView) -> Option<u64> {
    let wait = view.wait?;
    if !view.fiber || view.state != TaskState::Parked || wait.until.is_some() {
        return None;
    }
    match wait.on {
        WaitOn::Join { id } => Some(id),
        WaitOn::Mutex { .. } => wait.on.lock_holder(),
        _ => None,
    }
}

/// A cycle of parked tasks (indices into `views`), if there is one. Each
/// task has at most one edge out, so following edges from each task either
/// leaves the set of parked tasks or comes back to a task on the path.
fn find_cycle(views: &[TaskView]) -> Option<Vec<usize>> {
    let index: HashMap<u64, usize> = views
        .iter()
        .enumerate()
        .map(|(i, v)| (v.task.id, i))
        .collect();
    let next = |i: usize| waits_for(&views[i]).and_then(|id| index.get(&id).copied());
    // 0: not seen, 1: on the current path, 2: done.
    let mut mark = vec![0u8; views.len()];
    for start in 0..views.len() {
        let mut path = Vec::new();
        let mut at = Some(start);
        while let Some(i) = at {
            match mark[i] {
                2 => break,
                1 => {
                    let from = path.iter().position(|&p| p == i).expect("on the path");
                    return Some(path[from..].to_vec());
                }
                _ => {
                    mark[i] = 1;
                    path.push(i);
                    at = next(i);
                }
            }
        }
        for i in path {
            mark[i] = 2;
        }
    }
    None
}
