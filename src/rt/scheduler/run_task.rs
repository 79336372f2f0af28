//! Running one task: resuming (or starting) a fiber's coroutine or polling
//! an async task's future, then acting on how it gave control back, and
//! publishing its output when it finishes.

use std::mem;
use std::ptr::NonNull;
use std::sync::Arc;

use corosensei::CoroutineResult;

use super::{CallbackCell, Core, Runnable};
use crate::rt::coro::{Exit, ForcedUnwind, Resume, Suspend};
use crate::rt::diag::Stop;
use crate::rt::task::{Body, BoxFuture, JoinError, Output, TaskCell};

impl Core {
    /// Resumes (or starts) a task's fiber until it suspends or finishes;
    /// returns whether it finished. Always inlined: the loop has two copies
    /// of its batch (the fast one, and the slow one for the watchdog and
    /// the trace, `SLOW`, which tells the trace how the run ended), and the
    /// fast one must keep the switch in its own frame (docs/benchmarks.md).
    #[inline(always)]
    pub(super) fn run_task<const SLOW: bool>(&self, key: usize) -> bool {
        let Some(task) = self.tasks.borrow().get(key).map(Arc::as_ptr) else {
            return false;
        };
        // SAFETY: the live-task table holds an `Arc` to this task until
        // `finish` removes it, and `finish` hands that `Arc` back to us (kept in
        // `_last` below) so it outlives every use of `task` in this function.
        // Nothing else removes a task while it runs: `cancel` runs only at
        // teardown, outside `run`, and `run` cannot be re-entered.
        let task: &TaskCell = unsafe { &*task };
        let local = task.local(self);
        local.queued.set(false);
        let mut body = local.body.borrow_mut();
        let result = match &mut *body {
            Body::Future(future) => {
                let done = if task.cancel_requested() {
                    Some(Err(JoinError::cancelled()))
                } else {
                    self.current.set(Some(NonNull::from(task)));
                    // A wait record counts only if made in this poll.
                    local.wait.next_poll();
                    #[cfg(feature = "tracing")]
                    local.span.enter();
                    let polled = poll_future(self, task, future);
                    #[cfg(feature = "tracing")]
                    local.span.exit(false);
                    self.current.set(None);
                    polled
                };
                let Some(output) = done else {
                    self.note_stop::<SLOW>(|| Stop::Park);
                    return false;
                };
                self.note_stop::<SLOW>(|| Stop::of(&output));
                let future = mem::replace(&mut *body, Body::Done);
                drop(body);
                drop(future); // the future's destructors run here, on the owner thread
                let _last = self.finish(task, output);
                return true;
            }
            Body::Started(coro) => {
                self.current.set(Some(NonNull::from(task)));
                #[cfg(feature = "tracing")]
                local.span.enter();
                coro.resume(&local.fault, self.resume_how(task, local))
            }
            Body::Done => {
                self.note_stop::<SLOW>(|| Stop::Stale);
                return false; // finished while queued (a stale wake)
            }
            Body::NotStarted(_) => {
                let Body::NotStarted(closure) = mem::replace(&mut *body, Body::Done) else {
                    unreachable!("matched just above")
                };
                if task.cancel_requested() {
                    // Cancelled before it ever ran: it never will.
                    self.note_stop::<SLOW>(|| Stop::Cancelled);
                    drop(body);
                    drop(closure);
                    let _last = self.finish(task, Err(JoinError::cancelled()));
                    return true;
                }
                let coro = match self.coroutine_for(local) {
                    Ok(coro) => coro,
                    Err(e) => {
                        self.note_stop::<SLOW>(|| Stop::NoStack);
                        drop(body);
                        drop(closure); // its captures are dropped here, on the owner thread
                        if task.is_detached() {
                            // No join will report it: say it here.
                            eprintln!("fiberloop: fiber #{} could not start: {e}", task.id);
                        }
                        let _last = self.finish(task, Err(JoinError::no_stack(e)));
                        return true;
                    }
                };
                let (guard, size) = coro.stack_bounds();
                local.fault.guard.set(guard);
                local.fault.size.set(size);
                *body = Body::Started(coro);
                let Body::Started(coro) = &mut *body else {
                    unreachable!("set just above")
                };
                self.current.set(Some(NonNull::from(task)));
                #[cfg(feature = "tracing")]
                local.span.enter();
                coro.start(&local.fault, closure)
            }
        };
        self.current.set(None);
        #[cfg(feature = "tracing")]
        {
            let parked = matches!(
                result,
                CoroutineResult::Yield(Suspend::Park | Suspend::Yield)
            );
            local.span.exit(parked);
            if parked {
                crate::rt::trace::event("park", task.id, task.name.as_deref());
            }
        }
        match result {
            CoroutineResult::Yield(Suspend::Yield) => {
                self.note_stop::<SLOW>(|| Stop::Yield);
                // The task is ours and not finished: re-queue it directly,
                // unless a wake during its run queued it already.
                drop(body);
                if !local.queued.replace(true) {
                    self.ready.borrow_mut().push_back(Runnable::Task(key));
                }
                false
            }
            CoroutineResult::Yield(Suspend::Park) => {
                self.note_stop::<SLOW>(|| Stop::Park);
                // A cancelled fiber that parks again (it caught the unwind)
                // has no waker left to queue it: queue it, so that it is
                // unwound again after the others had their turn.
                if self.resume_how(task, local) == Resume::Unwind && !local.queued.replace(true) {
                    drop(body);
                    self.ready.borrow_mut().push_back(Runnable::Task(key));
                }
                false
            }
            CoroutineResult::Yield(Suspend::Done) => {
                let Body::Started(coro) = mem::replace(&mut *body, Body::Done) else {
                    unreachable!("a fiber that ran has a coroutine")
                };
                drop(body);
                let exit = coro.take_exit();
                self.park_idle(coro);
                let output = output_of(exit);
                self.note_stop::<SLOW>(|| Stop::of(&output));
                let _last = self.finish(task, output);
                true
            }
            CoroutineResult::Return(()) => {
                self.note_stop::<SLOW>(|| Stop::Cancelled);
                // Only a retired coroutine returns; a fiber's never does.
                *body = Body::Done;
                drop(body);
                let _last = self.finish(task, Err(JoinError::cancelled()));
                true
            }
        }
    }

    /// Tells the trace how the run ended (the slow path's copy only).
    #[inline(always)]
    fn note_stop<const SLOW: bool>(&self, stop: impl FnOnce() -> Stop) {
        if SLOW {
            if let Some(rec) = self.diag.recorder() {
                rec.stopped(stop());
            }
        }
    }

    /// How to resume a started fiber: unwind it if it was cancelled, unless
    /// it waits in a shielded wait.
    #[inline]
    fn resume_how(&self, task: &TaskCell, local: &crate::rt::task::Local) -> Resume {
        if task.cancel_requested() && !local.shielded.get() {
            Resume::Unwind
        } else {
            Resume::Run
        }
    }

    /// Publishes a task's output and forgets the task. Returns the table's
    /// reference, for the caller to drop once it no longer uses `task`.
    #[must_use]
    #[inline]
    pub(super) fn finish(&self, task: &TaskCell, output: Output) -> Option<Arc<TaskCell>> {
        let local = task.local(self);
        #[cfg(feature = "tracing")]
        crate::rt::trace::event("finish", task.id, task.name.as_deref());
        super::bump(&self.metrics.finished);
        self.unreserve(local);
        task.complete(local, output);
        if let Some((key, id)) = local.joiner.take() {
            self.schedule_joiner(key, id);
        }
        task.close_bank(local);
        self.tasks.borrow_mut().try_remove(local.key.get())
    }
}

/// Polls an async task's future once, with a waker that borrows the table's
/// reference to the task. Returns its output once it is ready (or panicked).
fn poll_future(core: &Core, task: &TaskCell, future: &mut BoxFuture) -> Option<Output> {
    let key = task.local(core).key.get();
    let tasks = core.tasks.borrow();
    let table_ref: &Arc<TaskCell> = tasks.get(key).expect("a running task is in the table");
    // Borrows the table's reference, which outlives this poll (the task
    // leaves the table only in `finish`, after we return).
    let waker = crate::rt::task::waker_ref(table_ref);
    drop(tasks); // the future may spawn, which needs the table
    let mut cx = std::task::Context::from_waker(&waker);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        future.as_mut().poll(&mut cx)
    })) {
        Ok(std::task::Poll::Pending) => None,
        Ok(std::task::Poll::Ready(value)) => Some(Ok(value)),
        Err(payload) => Some(Err(JoinError::panicked(payload))),
    }
}

pub(super) fn output_of(exit: Exit) -> Output {
    match exit {
        Ok(value) => Ok(value),
        Err(payload) if payload.is::<ForcedUnwind>() => Err(JoinError::cancelled()),
        Err(payload) => Err(JoinError::panicked(payload)),
    }
}

pub(super) fn run_callback(callback: &CallbackCell) {
    let Some(f) = callback.f.take() else { return }; // cancelled
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        // The panic hook has printed the message; like asyncio's default
        // exception handler, report and keep the loop going.
        eprintln!("fiberloop: a loop callback panicked; the loop carries on");
    }
}
