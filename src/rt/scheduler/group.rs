//! The loops of a multi-loop runtime as one group: where a `Send` task
//! spawned on the runtime waits until a loop adopts it, which loop a spawn
//! picks, and stealing.
//!
//! Each loop's `Shared` has a queue of *unadopted* tasks: an unstarted fiber
//! (a `Send` closure, no stack yet) or an unpolled `Send` future, whose
//! `TaskCell` has no owner. Until a loop adopts such a task it is only data,
//! so it may go to any loop. Adoption makes the adopting loop the owner for
//! good (`TaskCell::set_owner`), before anything touches the task's
//! owner-only fields; from then on the task runs, suspends and ends on that
//! thread. A started fiber never moves: a thread-local's address that LLVM
//! cached across a stack switch stays right.
//!
//! - **Placing.** A spawn compares the load (live tasks plus queued ones) of
//!   two loops and queues on the lighter: from a loop's own fiber, that loop
//!   and one other picked at random (ties stay home, for locality); from
//!   elsewhere, two random loops.
//! - **Adopting.** Each turn a loop adopts a few tasks from its own queue
//!   (more when it has nothing else to run), never all at once, so that the
//!   rest stay stealable.
//! - **Stealing.** A loop with nothing to run and nothing queued takes half
//!   (at most `STEAL_MAX`) of the first non-empty queue of another loop.
//! - **Waking a thief.** A spawn onto a queue wakes one sleeping loop to
//!   steal, unless a woken loop has not looked yet (`searching`): one wake in
//!   flight at a time, as tokio's "searching" workers do.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{Core, Runnable, Shared};
use crate::rt::task::TaskCell;

/// Most tasks one steal takes.
const STEAL_MAX: usize = 32;

/// Tasks a loop adopts from its own queue per turn: more when idle.
const ADOPT_IDLE: usize = 16;
const ADOPT_BUSY: usize = 4;

/// The loops of one runtime.
pub(crate) struct Group {
    loops: Box<[Arc<Shared>]>,
    /// A loop was woken to steal and has not looked yet.
    searching: AtomicBool,
}

impl Group {
    pub(crate) fn new(loops: Vec<Arc<Shared>>) -> Arc<Group> {
        assert!(!loops.is_empty(), "a runtime has at least one loop");
        Arc::new(Group {
            loops: loops.into_boxed_slice(),
            searching: AtomicBool::new(false),
        })
    }

    /// Number of loops.
    pub(crate) fn len(&self) -> usize {
        self.loops.len()
    }

    /// The thread-safe half of loop `index`.
    pub(crate) fn shared(&self, index: usize) -> &Arc<Shared> {
        &self.loops[index]
    }

    fn load(&self, index: usize) -> usize {
        let shared = &self.loops[index];
        shared.load.load(Ordering::Relaxed) + shared.queue.len()
    }

    /// The loop a spawn goes to: the less loaded of two (see the module docs).
    /// `home` is the caller's own loop, if it is one of ours.
    pub(crate) fn place(&self, home: Option<usize>) -> usize {
        let n = self.loops.len();
        if n == 1 {
            return 0;
        }
        let first = home.unwrap_or_else(|| random_below(n));
        let mut second = random_below(n - 1);
        if second >= first {
            second += 1;
        }
        if self.load(second) < self.load(first) {
            second
        } else {
            first
        }
    }

    /// Queues an unadopted task on loop `index`. `from_home` says the caller
    /// runs on that loop (which is awake, so needs no wake). Gives the task
    /// back if that loop has closed.
    pub(crate) fn push(
        &self,
        index: usize,
        task: Arc<TaskCell>,
        from_home: bool,
    ) -> Result<(), Arc<TaskCell>> {
        let shared = &self.loops[index];
        if shared.closed.load(Ordering::SeqCst) {
            return Err(task);
        }
        shared.queue.push(task);
        // SeqCst on both sides (see `Shared::close_queue`): either the loop's
        // closing drain sees this task, or this sees the loop closed.
        if shared.closed.load(Ordering::SeqCst) {
            shared.abandon_queued();
            return Ok(()); // its handle reports it cancelled
        }
        if !from_home {
            shared.notify();
        }
        self.wake_thief(index);
        Ok(())
    }

    /// Wakes one sleeping loop other than `busy` to steal, unless one is
    /// already on its way. A hint only: a loop that misses it finds the work
    /// at its next turn, and the queue's own loop runs it anyway.
    fn wake_thief(&self, busy: usize) {
        if self.loops.len() == 1 || self.searching.load(Ordering::Relaxed) {
            return;
        }
        let sleeper = (0..self.loops.len())
            .filter(|&i| i != busy)
            .find(|&i| self.loops[i].sleeping.load(Ordering::Relaxed));
        if let Some(i) = sleeper {
            if !self.searching.swap(true, Ordering::AcqRel) {
                let _ = self.loops[i].poller.wake();
            }
        }
    }

    /// Takes up to half (at most `STEAL_MAX`) of another loop's queue for
    /// loop `thief`, handing each task to `adopt`; returns how many.
    fn steal(&self, thief: usize, mut adopt: impl FnMut(Arc<TaskCell>)) -> usize {
        let n = self.loops.len();
        let start = random_below(n);
        for k in 0..n {
            let victim = (start + k) % n;
            if victim == thief {
                continue;
            }
            let queue = &self.loops[victim].queue;
            let want = queue.len().div_ceil(2).min(STEAL_MAX);
            let mut got = 0;
            while got < want {
                let Some(task) = queue.pop() else { break };
                adopt(task);
                got += 1;
            }
            if got > 0 {
                return got;
            }
        }
        0
    }
}

impl Shared {
    /// Live tasks (as last published), queued unadopted tasks, tasks stolen.
    pub(crate) fn stats(&self) -> (usize, usize, u64) {
        (
            self.load.load(Ordering::Relaxed),
            self.queue.len(),
            self.stolen.load(Ordering::Relaxed),
        )
    }

    /// Ends the tasks still queued here unadopted: their loop has closed.
    pub(crate) fn abandon_queued(&self) {
        while let Some(task) = self.queue.pop() {
            task.abandon();
        }
    }
}

impl Core {
    /// Makes this loop loop `index` of `group` (once, before it runs).
    pub(crate) fn join_group(&self, group: Arc<Group>, index: usize) {
        let joined = self.group.set((group, index));
        assert!(joined.is_ok(), "fiberloop: a loop joined two runtimes");
    }

    /// The runtime this loop belongs to, and its index there.
    pub(crate) fn group(&self) -> Option<&(Arc<Group>, usize)> {
        self.group.get()
    }

    /// Makes a task this loop's own and queues it behind older work.
    pub(super) fn adopt(&self, task: Arc<TaskCell>) {
        if task.owner().is_none() {
            task.set_owner(&self.shared);
        }
        let local = task.local(self);
        local.key.set(self.tasks.borrow_mut().insert(task.clone()));
        local.queued.set(true);
        self.ready
            .borrow_mut()
            .push_back(Runnable::Task(local.key.get()));
    }

    /// Once a turn: adopts a few tasks from this loop's runtime queue, steals
    /// from another loop when there is nothing at all to run, and publishes
    /// this loop's load for placing.
    pub(super) fn take_runtime_work(&self) {
        let Some((group, index)) = self.group.get() else {
            return;
        };
        // Whoever was woken to steal is looking now.
        group.searching.store(false, Ordering::Relaxed);
        let idle = self.ready.borrow().is_empty();
        let max = if idle { ADOPT_IDLE } else { ADOPT_BUSY };
        let mut got = 0;
        while got < max {
            let Some(task) = self.shared.queue.pop() else {
                break;
            };
            self.adopt(task);
            got += 1;
        }
        if got == 0 && idle {
            let stolen = group.steal(*index, |task| self.adopt(task));
            if stolen > 0 {
                self.stolen.set(self.stolen.get() + stolen as u64);
                self.shared
                    .stolen
                    .store(self.stolen.get(), Ordering::Relaxed);
                // There may be more: let another sleeper look too.
                group.wake_thief(*index);
            }
        }
        self.shared
            .load
            .store(self.tasks.borrow().len(), Ordering::Relaxed);
    }
}

/// A number in `0..n` from a per-thread xorshift generator (placement and
/// steal order need spread, not quality).
fn random_below(n: usize) -> usize {
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    STATE.with(|state| {
        let mut x = state.get();
        if x == 0 {
            // Seeded from the state's address and the clock: distinct per thread.
            let seed = state as *const Cell<u64> as u64
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
            x = seed | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (((x >> 32) * n as u64) >> 32) as usize
    })
}
