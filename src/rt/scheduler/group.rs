//! The loops of a multi-loop runtime as one group: where a `Send` task
//! spawned on the runtime waits until a loop adopts it, which loop a spawn
//! picks, and stealing.
//!
//! Each loop keeps *unadopted* tasks: an unstarted fiber (a `Send` closure,
//! no stack yet) or an unpolled `Send` future, whose `TaskCell` has no
//! owner. Those its own fibers spawn go to its deque (a Chase-Lev deque:
//! the loop takes the newest, thieves the oldest); those spawned from other
//! threads go to its `Shared::queue`. Until a loop adopts such a task it is
//! only data, so it may go to any loop. Adoption makes the adopting loop the
//! owner for good (`TaskCell::set_owner`), before anything touches the
//! task's owner-only fields; from then on the task runs, suspends and ends
//! on that thread. A started fiber never moves: a thread-local's address
//! that LLVM cached across a stack switch stays right.
//!
//! - **Placing.** A spawn from one of the runtime's own fibers goes to that
//!   loop's deque, and idle loops steal from there (tokio's and Go's rule:
//!   the spawner's cache is warm, and a parent joining a child on its own
//!   loop needs no cross-thread wake). A spawn from anywhere else compares
//!   the load (live tasks plus queued ones) of two random loops and queues on
//!   the lighter.
//! - **Adopting.** Each turn a loop moves what other threads queued for it
//!   into its deque. With nothing ready it adopts the newest task of its
//!   deque and runs it at once, so a spawn tree runs depth first, as with
//!   local spawns, and only the fibers on the current path hold stacks.
//!   While busy it also adopts a few of the oldest each turn, so that nothing
//!   waits forever behind newer work; the rest stay stealable.
//! - **Stealing.** A loop with nothing to run and nothing queued moves about
//!   half (at most `STEAL_MAX` from a queue) of the oldest tasks of another
//!   loop's deque or queue into its own deque.
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

/// Oldest tasks a busy loop adopts per turn, from its own deque.
const ADOPT_BUSY: usize = 4;

/// Most tasks a turn moves from the loop's queue into its deque.
const MOVE_MAX: usize = 256;

/// The loops of one runtime.
pub(crate) struct Group {
    loops: Box<[Arc<Shared>]>,
    /// A loop was woken to steal and has not looked yet.
    searching: AtomicBool,
    /// The first deadlock report of any of its loops, for `Runtime::run`.
    deadlock: std::sync::Mutex<Option<String>>,
}

impl Group {
    pub(crate) fn new(loops: Vec<Arc<Shared>>) -> Arc<Group> {
        assert!(!loops.is_empty(), "a runtime has at least one loop");
        Arc::new(Group {
            loops: loops.into_boxed_slice(),
            searching: AtomicBool::new(false),
            deadlock: std::sync::Mutex::new(None),
        })
    }

    /// The first deadlock one of the loops reported, if any.
    pub(crate) fn deadlock(&self) -> Option<String> {
        self.deadlock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
        shared.load.load(Ordering::Relaxed) + shared.queue.len() + shared.stealer.len()
    }

    /// The loop a spawn from outside the runtime goes to: the less loaded of
    /// two picked at random.
    pub(crate) fn place(&self) -> usize {
        let n = self.loops.len();
        if n == 1 {
            return 0;
        }
        let first = random_below(n);
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

    /// Queues an unadopted task on loop `index` from another thread (the
    /// loop's own fibers use `Core::push_runtime_task`). Gives the task back
    /// if that loop has closed.
    pub(crate) fn push(&self, index: usize, task: Arc<TaskCell>) -> Result<(), Arc<TaskCell>> {
        let shared = &self.loops[index];
        // Either the loop's closing drain takes this task, or this sees the
        // loop closed and abandons it (its handle then reports it cancelled).
        shared.closed.push(
            task,
            |task| shared.queue.push(task),
            || shared.abandon_queued(),
        )?;
        shared.notify();
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

    /// Moves about half of the oldest unadopted tasks of another loop into
    /// `into`, the deque of loop `thief`; returns how many.
    fn steal(&self, thief: usize, into: &crossbeam_deque::Worker<Arc<TaskCell>>) -> usize {
        let n = self.loops.len();
        let start = random_below(n);
        for k in 0..n {
            let victim = (start + k) % n;
            if victim == thief {
                continue;
            }
            let shared = &self.loops[victim];
            let before = into.len();
            // `steal_batch` takes about half; retry while it races another thief.
            while shared.stealer.steal_batch(into).is_retry() {}
            let mut got = into.len() - before;
            let want = shared.queue.len().div_ceil(2).min(STEAL_MAX);
            for _ in 0..want {
                let Some(task) = shared.queue.pop() else {
                    break;
                };
                into.push(task);
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
            self.queue.len() + self.stealer.len(),
            self.stolen.load(Ordering::Relaxed),
        )
    }

    /// Ends the tasks still queued here unadopted: their loop has closed.
    pub(crate) fn abandon_queued(&self) {
        while let Some(task) = self.queue.pop().or_else(|| self.steal_oldest()) {
            task.abandon();
        }
    }

    /// The oldest task of this loop's deque (its thieves' end).
    fn steal_oldest(&self) -> Option<Arc<TaskCell>> {
        loop {
            match self.stealer.steal() {
                crossbeam_deque::Steal::Success(task) => return Some(task),
                crossbeam_deque::Steal::Retry => {}
                crossbeam_deque::Steal::Empty => return None,
            }
        }
    }
}

impl Core {
    /// Makes this loop loop `index` of `group` (once, before it runs).
    pub(crate) fn join_group(&self, group: Arc<Group>, index: usize) {
        let joined = self.group.set((group, index));
        assert!(joined.is_ok(), "fiberloop: a loop joined two runtimes");
    }

    /// Hands a deadlock report to this loop's runtime, if it is in one.
    pub(crate) fn publish_deadlock(&self, report: String) {
        if let Some((group, _)) = self.group.get() {
            let mut first = group.deadlock.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(report);
        }
    }

    /// The runtime this loop belongs to, and its index there.
    pub(crate) fn group(&self) -> Option<&(Arc<Group>, usize)> {
        self.group.get()
    }

    /// Makes a task this loop's own and queues it behind older work.
    pub(super) fn adopt(&self, task: Arc<TaskCell>) {
        let key = self.own(task);
        self.ready.borrow_mut().push_back(Runnable::Task(key));
    }

    /// Takes a task into the live-task table as about to run (its owner set
    /// first if it had none); returns its key.
    fn own(&self, task: Arc<TaskCell>) -> usize {
        if !task.has_owner() {
            task.set_owner(&self.shared);
        }
        let local = task.local(self);
        local.key.set(self.tasks.borrow_mut().insert(task.clone()));
        local.queued.set(true);
        self.note_queued(&task, crate::rt::diag::Queued::Adopted);
        local.key.get()
    }

    /// Queues an unadopted task spawned by one of this loop's fibers on
    /// this loop's deque. Gives the task back if the loop has closed.
    pub(crate) fn push_runtime_task(&self, task: Arc<TaskCell>) -> Result<(), Arc<TaskCell>> {
        let Some((group, index)) = self.group.get() else {
            return Err(task);
        };
        // The loop closes on this thread: nothing to race with here.
        if self.shared.closed.is_closed() {
            return Err(task);
        }
        self.deque.push(task);
        group.wake_thief(*index);
        Ok(())
    }

    /// With nothing ready: adopts the newest task of this loop's deque and
    /// hands it back to run now. (A lone loop only checks its group: the rest
    /// stays out of line, off `run`'s hot path.)
    #[inline]
    pub(super) fn adopt_newest(&self) -> Option<Runnable> {
        self.group.get()?;
        self.adopt_newest_in_group()
    }

    #[inline(never)]
    fn adopt_newest_in_group(&self) -> Option<Runnable> {
        let task = self.deque.pop()?;
        Some(Runnable::Task(self.own(task)))
    }

    /// Once a turn: adopts a few of the oldest runtime tasks queued here,
    /// steals from another loop when there is nothing at all to run, and
    /// publishes this loop's load for placing.
    #[inline]
    pub(super) fn take_runtime_work(&self) {
        if let Some((group, index)) = self.group.get() {
            self.take_group_work(group, *index);
        }
    }

    #[inline(never)]
    fn take_group_work(&self, group: &Group, index: usize) {
        // Whoever was woken to steal is looking now.
        group.searching.store(false, Ordering::Relaxed);
        // What other threads queued here joins the deque (newest on top).
        for _ in 0..MOVE_MAX {
            let Some(task) = self.shared.queue.pop() else {
                break;
            };
            self.deque.push(task);
        }
        let idle = self.ready.borrow().is_empty();
        if !idle {
            // Busy: the oldest get a turn too.
            for _ in 0..ADOPT_BUSY {
                let Some(task) = self.shared.steal_oldest() else {
                    break;
                };
                self.adopt(task);
            }
        } else if self.deque.is_empty() {
            let stolen = group.steal(index, &self.deque);
            if stolen > 0 {
                // Only this loop writes its count: no read-modify-write needed.
                let total = self.shared.stolen.load(Ordering::Relaxed) + stolen as u64;
                self.shared.stolen.store(total, Ordering::Relaxed);
                // There may be more: let another sleeper look too.
                group.wake_thief(index);
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
