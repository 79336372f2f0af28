//! Closing a loop's tasks: unstarted ones are dropped, suspended ones are
//! unwound (newest first, so a scope's fibers before the fiber that opened
//! it), then queued callbacks, timers and idle coroutines go.

use std::mem;
use std::ptr::NonNull;
use std::sync::Arc;

use corosensei::CoroutineResult;

use super::run_task::output_of;
use super::{Core, UNWIND_ATTEMPTS};
use crate::rt::coro::{Resume, Suspend};
use crate::rt::stacks as stack;
use crate::rt::task::{Body, JoinError, TaskCell};

impl Core {
    /// Number of live fibers (started or not).
    pub(crate) fn task_count(&self) -> usize {
        self.tasks.borrow().len()
    }

    /// Cancels every live fiber: unstarted ones are dropped, suspended ones are
    /// unwound so their destructors run. Then drops queued callbacks and timers.
    pub(crate) fn cancel_all(&self) {
        // Destructors may spawn or wake; a few rounds catch what they start.
        for _ in 0..8 {
            // Newest first: a fiber's children (which may borrow from its stack
            // in a `scope`) unwind before it does.
            let mut tasks: Vec<Arc<TaskCell>> =
                self.tasks.borrow().iter().map(|(_, t)| t.clone()).collect();
            tasks.sort_by_key(|t| std::cmp::Reverse(t.id));

            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                self.cancel(&task);
            }
        }
        let left = self.tasks.borrow().len();
        if left > 0 {
            eprintln!("fiberloop: {left} fibers kept spawning while the loop was closing; dropped");
            let tasks: Vec<Arc<TaskCell>> = self.tasks.borrow_mut().drain().collect();
            for task in tasks {
                let local = task.local(self);
                *local.body.borrow_mut() = Body::Done;
                self.unreserve(local);
                task.close_bank(local);
            }
        }
        let ready = mem::take(&mut *self.ready.borrow_mut());
        drop(ready);
        let mut timers = mem::take(&mut *self.timers.borrow_mut());
        timers.clear();
        // Idle coroutines return from their root; their stacks go to the
        // thread's pool for the next loop (or generators).
        self.retire_idle(stack::give_back);
    }

    fn cancel(&self, task: &Arc<TaskCell>) {
        let local = task.local(self);
        let body = mem::replace(&mut *local.body.borrow_mut(), Body::Done);
        match body {
            Body::Done => {}
            Body::Future(future) => {
                drop(future);
                drop(self.finish(task, Err(JoinError::cancelled())));
            }
            Body::NotStarted(closure) => {
                drop(closure);
                drop(self.finish(task, Err(JoinError::cancelled())));
            }
            Body::Started(mut coro) => {
                self.current.set(Some(NonNull::from(&**task)));
                // Its destructors' events belong to its spans too.
                #[cfg(feature = "tracing")]
                local.span.enter();
                for _ in 0..UNWIND_ATTEMPTS {
                    match coro.resume(&local.fault, Resume::Unwind) {
                        CoroutineResult::Yield(Suspend::Done) => {
                            self.current.set(None);
                            #[cfg(feature = "tracing")]
                            local.span.exit(false);
                            let exit = coro.take_exit();
                            self.park_idle(coro);
                            drop(self.finish(task, output_of(exit)));
                            return;
                        }
                        CoroutineResult::Return(()) => break,
                        CoroutineResult::Yield(_) => {} // blocked again while unwinding
                    }
                }
                self.current.set(None);
                #[cfg(feature = "tracing")]
                local.span.exit(false);
                eprintln!(
                    "fiberloop: fiber #{} kept blocking while being cancelled; leaking its stack",
                    task.id
                );
                mem::forget(coro);
                drop(self.finish(task, Err(JoinError::cancelled())));
            }
        }
    }
}
