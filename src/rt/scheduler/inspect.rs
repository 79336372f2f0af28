//! What the diagnostics (`rt::diag`) may see and do in a loop: its tasks
//! with their state and wait records, a backtrace of a suspended fiber, and
//! the wait records themselves, which a parking task writes here.
//!
//! Nothing here changes what a task does: a backtrace resumes a suspended
//! fiber only into its capture mode, from which it suspends again at once.

use std::sync::Arc;
use std::time::Instant;

use super::Core;
use crate::rt::diag::{WaitOn, Waiting};
use crate::rt::task::{Body, TaskCell};

/// Where a task is in its life, as the dump prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskState {
    /// It is running now (it, or something it called, asked for the view).
    Running,
    /// It is in the ready queue.
    Ready,
    /// It waits for a waker.
    Parked,
    /// A fiber that has not run yet (it has no stack).
    NotStarted,
}

/// A task as the diagnostics see it.
pub(crate) struct TaskView {
    pub(crate) task: Arc<TaskCell>,
    pub(crate) fiber: bool,
    pub(crate) state: TaskState,
    pub(crate) wait: Option<Waiting>,
}

impl Core {
    /// Every live task of this loop, oldest first.
    pub(crate) fn task_views(&self) -> Vec<TaskView> {
        let current = self.current.get().map(|task| task.as_ptr().cast_const());
        let tasks: Vec<Arc<TaskCell>> =
            self.tasks.borrow().iter().map(|(_, t)| t.clone()).collect();
        let mut views: Vec<TaskView> = tasks
            .into_iter()
            .map(|task| {
                let local = task.local(self);
                let running = current == Some(Arc::as_ptr(&task));
                // The running task's body is borrowed by `run_task`.
                let (fiber, started) = match local.body.try_borrow().as_deref() {
                    Ok(Body::Future(_)) => (false, true),
                    Ok(Body::NotStarted(_)) => (true, false),
                    Ok(_) => (true, true),
                    // The running task: a fiber if we are on its stack.
                    Err(_) => (crate::rt::coro::in_fiber(), true),
                };
                let state = if running {
                    TaskState::Running
                } else if !started {
                    TaskState::NotStarted
                } else if local.queued.get() {
                    TaskState::Ready
                } else {
                    TaskState::Parked
                };
                let wait = if state == TaskState::Parked {
                    local.wait.get(fiber)
                } else {
                    None
                };
                TaskView {
                    task,
                    fiber,
                    state,
                    wait,
                }
            })
            .collect();
        views.sort_by_key(|view| view.task.id);
        views
    }

    /// A backtrace of a fiber of this loop: taken on its own stack if it is
    /// suspended, here if it is the one running; `None` for an async task
    /// or a fiber that has not started.
    pub(crate) fn backtrace_of(&self, task: &TaskCell) -> Option<std::backtrace::Backtrace> {
        let local = task.local(self);
        let is_current = self
            .current
            .get()
            .is_some_and(|c| std::ptr::eq(c.as_ptr(), task));
        match local.body.try_borrow_mut() {
            Ok(mut body) => match &mut *body {
                Body::Started(coro) => coro.capture(&local.fault),
                _ => None,
            },
            Err(_) if is_current && crate::rt::coro::in_fiber() => {
                Some(std::backtrace::Backtrace::force_capture())
            }
            Err(_) => None,
        }
    }

    /// Records that the running fiber parks waiting on `on`.
    #[inline(always)]
    pub(crate) fn begin_wait(&self, on: WaitOn, until: Option<Instant>) {
        let since = self.diag.clock.get();
        self.with_current(|task| task.local_of_current(self).wait.begin(on, since, until));
        if matches!(on, WaitOn::Mutex { .. }) {
            self.diag.lock_waits.set(self.diag.lock_waits.get() + 1);
        }
    }

    /// The running fiber's wait ended (however it ended).
    #[inline(always)]
    pub(crate) fn end_wait(&self, on: WaitOn) {
        self.with_current(|task| task.local_of_current(self).wait.end());
        if matches!(on, WaitOn::Mutex { .. }) {
            self.diag.lock_waits.set(self.diag.lock_waits.get() - 1);
        }
    }

    /// Records what the async task being polled waits on (one of
    /// fiberloop's futures said `Pending`); see `WaitCell::note`.
    #[inline]
    pub(crate) fn note_pending(&self, on: WaitOn, until: Option<Instant>) {
        let now = self.diag.clock.get();
        self.with_current(|task| task.local_of_current(self).wait.note(on, now, until));
    }

    /// Live timers and registered I/O sources, for the dump's header.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.timers.borrow().len(), self.reactor.len())
    }

    /// The multi-loop runtime's index of this loop, if it is in one.
    pub(crate) fn group_index(&self) -> Option<usize> {
        self.group.get().map(|(_, index)| *index)
    }
}
