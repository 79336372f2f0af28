//! Ready-queue policy: where a spawned task, a woken task, a resumed joiner
//! and a callback go in the ready queue, and which item runs next (inherited
//! turns bounded by `BUDGET`; see the module docs of `scheduler`).

use std::io;
use std::panic::Location;
use std::rc::Rc;
use std::sync::Arc;

use super::{next_id, CallbackCell, Core, Runnable, Shared, BUDGET};
use crate::rt::coro::Coro;
use crate::rt::diag::Queued;
use crate::rt::stacks as stack;
use crate::rt::task::{Body, BoxFuture, Closure, TaskCell};

impl Core {
    /// Creates a task for `closure` and queues it ahead of older work.
    ///
    /// The fiber gets its stack when it first runs; a reservation made now
    /// makes sure there will be one to map, so that hitting the limit on
    /// live stacks is reported by this spawn (see the `stack` module). If no
    /// idle coroutine of that size is at hand, one is made now, so that a
    /// size that cannot be mapped (address space, memory) is reported here
    /// too.
    #[inline]
    pub(crate) fn spawn(
        &self,
        closure: Closure,
        name: Option<Arc<str>>,
        stack_size: usize,
        location: &'static Location<'static>,
    ) -> io::Result<Arc<TaskCell>> {
        let stack_size = crate::sys::stack::usable_size(stack_size)?;
        self.reservations.reserve(stack_size)?;
        if !self.has_idle(stack_size) {
            match stack::take(stack_size) {
                Ok(stack) => self.park_idle(Coro::new(stack)),
                Err(e) => {
                    self.reservations.unreserve();
                    return Err(e);
                }
            }
        }
        let task = self.insert(Body::NotStarted(closure), name, stack_size, location);
        task.local(self).reserved.set(true);
        Ok(task)
    }

    /// Builds a task on any thread for a loop that adopts it later: `owner`'s
    /// loop, or (`None`) whichever loop of a runtime takes it first.
    pub(crate) fn remote_task(
        owner: Option<&Arc<Shared>>,
        body: Body,
        stack_size: usize,
        location: &'static Location<'static>,
    ) -> Arc<TaskCell> {
        let size = if let Body::NotStarted(_) = body {
            stack_size
        } else {
            0
        };
        TaskCell::new(next_id(), None, location, size, owner.cloned(), body)
    }

    /// Creates an async task polling `future` and queues it ahead of older work.
    #[inline]
    pub(crate) fn spawn_future(
        &self,
        future: BoxFuture,
        location: &'static Location<'static>,
    ) -> Arc<TaskCell> {
        self.insert(Body::Future(future), None, 0, location)
    }

    /// Adds a task to the live-task table and queues it ahead of older work
    /// (after the tasks the running item spawned before it).
    #[inline]
    fn insert(
        &self,
        body: Body,
        name: Option<Arc<str>>,
        stack_size: usize,
        location: &'static Location<'static>,
    ) -> Arc<TaskCell> {
        let owner = Some(self.shared.clone());
        let task = TaskCell::new(next_id(), name, location, stack_size, owner, body);
        let local = task.local(self);
        local.key.set(self.tasks.borrow_mut().insert(task.clone()));
        local.queued.set(true);
        self.note_queued(&task, Queued::Spawned);
        let mut ready = self.ready.borrow_mut();
        let at = self.spawn_at.get().min(ready.len());
        if at == 0 {
            ready.push_front(Runnable::Task(local.key.get()));
        } else {
            ready.insert(at, Runnable::Task(local.key.get()));
        }
        if at <= self.inherited.get() {
            self.inherited.set(self.inherited.get() + 1);
        }
        self.spawn_at.set(at + 1);
        drop(ready);
        task
    }

    /// Queues a callback at the back of the ready queue.
    pub(crate) fn push_callback(&self, callback: Rc<CallbackCell>) {
        self.ready.borrow_mut().push_back(Runnable::Call(callback));
    }

    /// Puts a woken task at the back of the ready queue, unless it is queued
    /// already or finished.
    #[inline]
    pub(crate) fn schedule(&self, task: Arc<TaskCell>) {
        self.schedule_ref(&task);
    }

    #[inline]
    pub(crate) fn schedule_ref(&self, task: &TaskCell) {
        let local = task.local(self);
        if !task.is_complete() && !local.queued.replace(true) {
            #[cfg(feature = "tracing")]
            crate::rt::trace::event("wake", task.id, task.name.as_deref());
            super::bump(&self.metrics.wakes_local);
            self.note_queued(task, Queued::Woken);
            self.ready
                .borrow_mut()
                .push_back(Runnable::Task(local.key.get()));
        }
    }

    /// Resumes the joiner at `key` next, ahead of older work, if it is still
    /// the task with `id` (a joiner cancelled meanwhile may have left a stale
    /// key behind).
    #[inline]
    pub(super) fn schedule_joiner(&self, key: usize, id: u64) {
        let tasks = self.tasks.borrow();
        let Some(task) = tasks.get(key).filter(|t| t.id == id) else {
            return;
        };
        let local = task.local(self);
        if !task.is_complete() && !local.queued.replace(true) {
            #[cfg(feature = "tracing")]
            crate::rt::trace::event("wake", task.id, task.name.as_deref());
            super::bump(&self.metrics.wakes_local);
            self.note_queued(task, Queued::Woken);
            self.ready.borrow_mut().push_front(Runnable::Task(key));
            self.inherited.set(self.inherited.get() + 1);
        }
    }

    /// Tells the scheduler trace, if one is recorded, who queued `task`
    /// (one branch when none is).
    #[inline(always)]
    pub(super) fn note_queued(&self, task: &TaskCell, how: Queued) {
        if let Some(rec) = self.diag.recorder() {
            rec.queued(task.id, how);
        }
    }

    /// The next item to run: the head of the queue, except that after
    /// `BUDGET` inherited items in a row the oldest ordinary item goes first.
    #[inline]
    pub(super) fn next_ready(&self) -> Option<Runnable> {
        let mut ready = self.ready.borrow_mut();
        let inherited = self.inherited.get().min(ready.len());
        if inherited == 0 {
            self.streak.set(0);
            return ready.pop_front();
        }
        if self.streak.get() >= BUDGET && ready.len() > inherited {
            self.streak.set(0);
            return ready.remove(inherited);
        }
        self.streak.set(self.streak.get() + 1);
        self.inherited.set(inherited - 1);
        ready.pop_front()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::any::Any;
    use std::cell::Cell;

    fn spawn_idle_task(core: &Core) -> usize {
        let future: BoxFuture = Box::pin(std::future::pending::<Box<dyn Any>>());
        let task = core.spawn_future(future, Location::caller());
        task.local(core).key.get()
    }

    /// Spawned work goes ahead of older work, in spawn order, but after
    /// `BUDGET` such turns in a row the oldest ordinary item gets one.
    #[test]
    fn inherited_turns_are_bounded_by_the_budget() {
        let core = Core::new().unwrap();
        core.push_callback(Rc::new(CallbackCell { f: Cell::new(None) }));
        let keys: Vec<usize> = (0..BUDGET + 9).map(|_| spawn_idle_task(&core)).collect();
        let mut order = Vec::new();
        while let Some(next) = core.next_ready() {
            order.push(match next {
                Runnable::Task(key) => Some(key),
                Runnable::Call(_) => None,
            });
        }
        let callback_at = order.iter().position(Option::is_none).unwrap();
        assert_eq!(
            callback_at, BUDGET,
            "the callback runs after BUDGET spawned tasks"
        );
        let tasks: Vec<usize> = order.into_iter().flatten().collect();
        assert_eq!(tasks, keys, "spawned tasks run in spawn order");
        core.cancel_all();
    }

    /// A joiner resumed on completion runs next, ahead of older work.
    #[test]
    fn a_resumed_joiner_runs_next() {
        let core = Core::new().unwrap();
        let joiner = spawn_idle_task(&core);
        let other = spawn_idle_task(&core);
        // Take both off the queue, as if they had run and parked.
        while core.next_ready().is_some() {}
        for key in [other, joiner] {
            let task = core.tasks.borrow()[key].clone();
            task.local(&core).queued.set(false);
        }
        core.schedule_ref(&core.tasks.borrow()[other].clone());
        let id = core.tasks.borrow()[joiner].id;
        core.schedule_joiner(joiner, id);
        let first = core.next_ready();
        assert!(matches!(first, Some(Runnable::Task(key)) if key == joiner));
        core.cancel_all();
    }
}
