//! The loop's side of a simulation (`fiberloop::sim`): what it does when
//! nothing is ready (move virtual time to the next timer, if every task is
//! durably blocked), and the seeded choice of the next ready item.

use std::time::Duration;

use super::{Core, Runnable, TaskState};
use crate::rt::diag::WaitOn;
use crate::rt::sim;

impl Core {
    /// Nothing is ready and the loop would sleep for `timeout`. In a
    /// simulation, if every task waits on timers or on the loop's own
    /// primitives (Go's "durably blocked"), the virtual clock jumps to the
    /// next timer and the loop does not sleep at all (`Some(ZERO)`). If a
    /// task waits on something outside (a real socket, the thread pool, a
    /// signal, a child), virtual time stands still and the loop sleeps until
    /// an event (`None`). If every task is blocked and no timer is set, the
    /// loop waits a little real time, a few times (another thread may still
    /// send), then returns `Err`: nothing can wake them (the report is
    /// recorded).
    pub(super) fn sim_idle(&self, timeout: Option<Duration>) -> Result<Option<Duration>, ()> {
        let views = self.task_views();
        let outside = views.iter().any(|view| {
            view.state == TaskState::Parked
                && view.wait.is_some_and(|w| {
                    w.on.is_external() && !matches!(w.on, WaitOn::Sleep | WaitOn::Future)
                })
        });
        if outside {
            return Ok(None);
        }
        let next = self.timers.borrow_mut().next_deadline();
        match next {
            Some(at) => {
                sim::advance_to(at);
                self.diag.clock.set(sim::now());
                Ok(Some(Duration::ZERO))
            }
            None if views.iter().any(|view| view.state == TaskState::Parked) => {
                if !sim::stuck() {
                    return Ok(Some(sim::STUCK_WAIT));
                }
                let report = format!(
                    "fiberloop::sim: every task on loop {} is blocked and no timer is set: nothing can wake them (a deadlock)\n{}",
                    self.id(),
                    self.dump(true)
                );
                self.diag.checks.declare(report);
                Err(())
            }
            None => Ok(timeout),
        }
    }

    /// The next ready item, drawn from the simulation's seed. Callbacks keep
    /// their order among themselves (asyncio promises `call_soon` FIFO): a
    /// draw that lands on one takes the oldest callback instead.
    pub(super) fn next_ready_seeded(&self) -> Option<Runnable> {
        let mut ready = self.ready.borrow_mut();
        self.inherited.set(0);
        self.streak.set(0);
        let mut at = sim::pick(ready.len());
        if matches!(ready.get(at), Some(Runnable::Call(_))) {
            at = ready
                .iter()
                .position(|item| matches!(item, Runnable::Call(_)))
                .unwrap_or(at);
        }
        ready.remove(at)
    }

    /// Notes a task's run in the simulation's run order.
    pub(super) fn sim_ran(&self, next: &Runnable) {
        if let Runnable::Task(key) = next {
            if let Some(task) = self.tasks.borrow().get(*key) {
                sim::ran(task.id);
            }
        }
    }
}
