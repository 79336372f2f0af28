//! The reference bank of a task's wakers: strong counts parked on the
//! owner thread instead of being released and taken again.
//!
//! Every wait costs a waker clone (a strong-count increment) and a wake or
//! drop (a decrement). On the task's own loop thread a waker that goes away
//! *deposits* its count here instead, and the next clone there *takes* one
//! instead of incrementing: no atomics for same-loop waits. Other threads
//! always count for real. When the task leaves its loop's table the bank
//! closes and hands its counts back, and every later release is real.
//!
//! The bank is owner-only (`Cell`s); what it must keep true is that no count
//! is lost or made up while other threads clone and drop wakers with real
//! atomics: its `loom` model (below, `--cfg loom`) checks that.

use std::cell::Cell;

/// Strong counts banked on the owner thread; `CLOSED` once the bank is
/// closed (one word, no flag: it sits in every task).
#[derive(Debug)]
pub(crate) struct RefBank {
    spare: Cell<usize>,
}

/// The value of a closed bank's count.
const CLOSED: usize = usize::MAX;

impl RefBank {
    #[inline]
    pub(crate) fn new() -> RefBank {
        RefBank {
            spare: Cell::new(0),
        }
    }

    /// Takes a banked count for a new waker; false if there is none (the
    /// caller increments the real count).
    #[inline]
    pub(crate) fn take(&self) -> bool {
        let spare = self.spare.get();
        let banked = spare > 0 && spare != CLOSED;
        if banked {
            self.spare.set(spare - 1);
        }
        banked
    }

    /// Banks a count a waker gives back; false once the bank is closed (the
    /// caller decrements the real count).
    #[inline]
    pub(crate) fn deposit(&self) -> bool {
        let spare = self.spare.get();
        if spare == CLOSED {
            return false;
        }
        self.spare.set(spare + 1);
        true
    }

    /// Closes the bank; returns how many counts the caller must release.
    #[inline]
    pub(crate) fn close(&self) -> usize {
        match self.spare.replace(CLOSED) {
            CLOSED => 0,
            spare => spare,
        }
    }
}

#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use crate::rt::loom::model as bounded;
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::Arc;

    /// The strong count of a task (`count`, 1 for the table) while the owner
    /// clones, wakes and drops wakers through the bank and another thread
    /// drops or clones-and-drops the wakers it was given: after the bank
    /// closes and every waker is gone, only the table's count is left.
    #[test]
    fn no_count_is_lost_or_made_up() {
        bounded(|| {
            let count = Arc::new(AtomicUsize::new(1));
            let bank = RefBank::new();
            let clone = |bank: &RefBank| {
                if !bank.take() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            };
            let release = |bank: &RefBank| {
                if !bank.deposit() {
                    count.fetch_sub(1, Ordering::AcqRel);
                }
            };
            // Two wakers go to another thread (counted for real there).
            clone(&bank);
            clone(&bank);
            let away = {
                let count = count.clone();
                loom::thread::spawn(move || {
                    count.fetch_add(1, Ordering::Relaxed); // a clone there
                    for _ in 0..3 {
                        count.fetch_sub(1, Ordering::AcqRel); // all dropped there
                    }
                })
            };
            // Owner-side waits meanwhile: clone, wake (deposit), again.
            for _ in 0..2 {
                clone(&bank);
                release(&bank);
            }
            for _ in 0..bank.close() {
                count.fetch_sub(1, Ordering::AcqRel);
            }
            clone(&bank); // after closing: real counts only
            release(&bank);
            away.join().unwrap();
            assert_eq!(count.load(Ordering::Acquire), 1);
        });
    }
}
