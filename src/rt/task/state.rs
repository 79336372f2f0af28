//! A task's state bits and the hand-off of its output between the owning
//! loop and the join handle: the part of a task that other threads touch.
//!
//! This file knows nothing of loops, wakers or fibers, so that its `loom`
//! models (the `loom_model` tests below, built with `--cfg loom`) check the
//! code as it is.
//!
//! ```text
//!   bit          set by                  meaning
//!   COMPLETE     the owner, once         the output slot is written (or the
//!                                        task ended without one)
//!   DETACHED     the handle, once        nobody will take the output
//!   JOIN_WAKER   a joiner, each wait     a waker is registered: completion
//!                                        must wake it
//!   CANCEL       a canceller, once+      the task is to be cancelled
//! ```
//!
//! The output is dropped by whoever sets the second of `COMPLETE` and
//! `DETACHED`; with `COMPLETE` alone, the handle takes it. A joiner sets
//! `JOIN_WAKER` after registering its waker and then looks at `COMPLETE`
//! again, so either it sees the completion or the completion sees its bit.

use crate::rt::loom::cell::UnsafeCell;
use crate::rt::loom::sync::atomic::{AtomicU8, Ordering};

const COMPLETE: u8 = 1 << 0;
const DETACHED: u8 = 1 << 1;
const JOIN_WAKER: u8 = 1 << 2;
const CANCEL: u8 = 1 << 3;

/// The state bits of one task.
pub(crate) struct State(AtomicU8);

/// What a completion must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Completed {
    /// The handle is gone: drop the output now (owner thread).
    pub(crate) drop_output: bool,
    /// A joiner registered a waker: wake it.
    pub(crate) wake_joiner: bool,
}

impl State {
    #[inline]
    pub(crate) fn new() -> State {
        State(AtomicU8::new(0))
    }

    #[inline]
    pub(crate) fn is_complete(&self) -> bool {
        self.0.load(Ordering::Acquire) & COMPLETE != 0
    }

    #[inline]
    pub(crate) fn is_detached(&self) -> bool {
        self.0.load(Ordering::Acquire) & DETACHED != 0
    }

    #[inline]
    pub(crate) fn cancel_requested(&self) -> bool {
        self.0.load(Ordering::Acquire) & CANCEL != 0
    }

    /// Marks the output written (release: the write happened before).
    #[inline]
    pub(crate) fn complete(&self) -> Completed {
        let previous = self.0.fetch_or(COMPLETE, Ordering::AcqRel);
        Completed {
            drop_output: previous & DETACHED != 0,
            wake_joiner: previous & JOIN_WAKER != 0,
        }
    }

    /// The handle lets go; true if the output is there for it to drop.
    #[inline]
    pub(crate) fn detach(&self) -> bool {
        self.0.fetch_or(DETACHED, Ordering::AcqRel) & COMPLETE != 0
    }

    /// A joiner registered its waker; true if the task completed meanwhile
    /// (then the joiner must not wait).
    #[inline]
    pub(crate) fn join_waker_set(&self) -> bool {
        self.0.fetch_or(JOIN_WAKER, Ordering::AcqRel);
        self.is_complete()
    }

    /// Asks for cancellation; true if the task must be woken for it (the
    /// first request, before completion).
    #[inline]
    pub(crate) fn request_cancel(&self) -> bool {
        self.0.fetch_or(CANCEL, Ordering::AcqRel) & (CANCEL | COMPLETE) == 0
    }
}

/// The output of a task: written once by the owner before [`State::complete`],
/// then taken once, by the handle or (detached) by the owner.
pub(crate) struct OutputSlot<T>(UnsafeCell<Option<T>>);

impl<T> OutputSlot<T> {
    #[inline]
    pub(crate) fn new() -> OutputSlot<T> {
        OutputSlot(UnsafeCell::new(None))
    }

    /// Stores the output.
    ///
    /// # Safety
    /// - Only the owner calls this, once, before `State::complete`; no one
    ///   else touches the slot until `COMPLETE` is set.
    #[inline]
    pub(crate) unsafe fn put(&self, value: T) {
        // SAFETY: the caller is the only party touching the slot (see above).
        self.0.with_mut(|slot| unsafe { *slot = Some(value) });
    }

    /// Takes the output.
    ///
    /// # Safety
    /// - The caller saw `COMPLETE` (acquire), so the write is finished; and
    /// - it is the one party entitled to the output: the handle, or the
    ///   owner after `Completed::drop_output`, or the handle after `detach`
    ///   returned true.
    #[inline]
    pub(crate) unsafe fn take(&self) -> Option<T> {
        // SAFETY: the caller is the only party touching the slot (see above).
        self.0.with_mut(|slot| unsafe { (*slot).take() })
    }
}

#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use crate::rt::loom::model as bounded;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::{Arc, Notify};

    /// Counts its drops.
    struct Output(Arc<AtomicUsize>);
    impl Drop for Output {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The owner completing while the handle detaches: the output is dropped
    /// exactly once, and never raced on.
    #[test]
    fn complete_and_detach_drop_the_output_once() {
        bounded(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let task = Arc::new((State::new(), OutputSlot::new()));
            let owner = {
                let (task, drops) = (task.clone(), drops.clone());
                loom::thread::spawn(move || {
                    // SAFETY: the owner, once, before complete.
                    unsafe { task.1.put(Output(drops)) };
                    if task.0.complete().drop_output {
                        // SAFETY: DETACHED was set first: ours.
                        drop(unsafe { task.1.take() });
                    }
                })
            };
            if task.0.detach() {
                // SAFETY: COMPLETE was set first: ours.
                drop(unsafe { task.1.take() });
            }
            owner.join().unwrap();
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        });
    }

    /// A joiner registering while the owner completes is never left asleep.
    #[test]
    fn a_joiner_is_never_left_waiting() {
        bounded(|| {
            let state = Arc::new(State::new());
            let wake = Arc::new(Notify::new());
            let owner = {
                let (state, wake) = (state.clone(), wake.clone());
                loom::thread::spawn(move || {
                    if state.complete().wake_joiner {
                        wake.notify();
                    }
                })
            };
            // The joiner, as `poll_complete` runs in a wait loop: the fast
            // check, then register and check again, then park (a wake may
            // be spurious: look again).
            while !state.is_complete() && !state.join_waker_set() {
                wake.wait();
            }
            assert!(state.is_complete());
            owner.join().unwrap();
        });
    }

    /// Two cancellers and a completion: at most one wake, none after it.
    #[test]
    fn cancellation_wakes_at_most_once_and_never_after_completion() {
        bounded(|| {
            let state = Arc::new(State::new());
            let wakes = Arc::new(AtomicUsize::new(0));
            let cancellers: Vec<_> = (0..2)
                .map(|_| {
                    let (state, wakes) = (state.clone(), wakes.clone());
                    loom::thread::spawn(move || {
                        if state.request_cancel() {
                            wakes.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            let completed_first = !state.cancel_requested();
            state.complete();
            cancellers.into_iter().for_each(|c| c.join().unwrap());
            let wakes = wakes.load(Ordering::SeqCst);
            assert!(wakes <= 1);
            assert!(state.cancel_requested());
            if !completed_first {
                assert_eq!(wakes, 1, "a cancel seen before completion woke it");
            }
        });
    }
}
