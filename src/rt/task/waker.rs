//! A task's `Waker`: fiberloop's own vtable over an `Arc<TaskCell>`, and the
//! reference bank that spares same-loop waits their atomic counts.

use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::cell::{Local, TaskCell};
use crate::rt::scheduler::Core;

/// A task's `Waker`: a strong reference to its `TaskCell`, with fiberloop's
/// own vtable so that reference counting can skip atomics on the owner thread.
///
/// Waking re-queues the task on its own loop: directly when woken on that
/// loop's thread, through the loop's remote queue otherwise.
///
/// The reference bank: a waker's strong count is the cost of every wait (a
/// clone when registering, a decrement when woken). On the owner thread a
/// woken or dropped waker does not decrement; it puts its count in the task's
/// bank (`Local::bank`, owner-only: see `bank.rs`), and the next clone there
/// takes it back instead of incrementing. Every waker still owns one real
/// strong count; the bank only holds counts the loop would have released and
/// taken again. It closes (giving its counts back) when the task leaves the
/// table, after which every release is a real decrement.
///
/// Every task waker starts here: a waker lent the caller's reference to
/// `task`. It must not outlive that reference, and is never dropped (clones
/// own their counts as usual).
#[inline]
pub(crate) fn waker_ref(task: &TaskCell) -> ManuallyDrop<Waker> {
    let ptr: *const TaskCell = task;
    // SAFETY: `task` lives in an `Arc` (`TaskCell::new` makes only those,
    // and nothing moves one out), so the pointer is one `Arc::into_raw` would
    // give. `ManuallyDrop` keeps the waker from releasing the count it
    // borrows; the caller keeps the reference alive while the waker is used.
    ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(ptr.cast(), &VTABLE)) })
}

static VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

// SAFETY (for the four functions below): `ptr` always points into an
// `Arc<TaskCell>` allocation, as from `Arc::into_raw` (see `waker_ref`), and
// the waker being cloned, woken or dropped owns (or, for `waker_ref`,
// borrows) one strong count, so the `TaskCell` is alive during each call.

unsafe fn waker_clone(ptr: *const ()) -> RawWaker {
    // SAFETY: see above.
    let task = unsafe { &*ptr.cast::<TaskCell>() };
    if !task.take_spare_ref() {
        // SAFETY: see above: the count is at least one.
        unsafe { Arc::increment_strong_count(ptr.cast::<TaskCell>()) };
    }
    RawWaker::new(ptr, &VTABLE)
}

unsafe fn waker_wake(ptr: *const ()) {
    // SAFETY: see above; this takes over the waker's count.
    let task = unsafe { Arc::from_raw(ptr.cast::<TaskCell>()) };
    crate::rt::scheduler::wake_task(task);
}

unsafe fn waker_wake_by_ref(ptr: *const ()) {
    // SAFETY: see above.
    let task = unsafe { &*ptr.cast::<TaskCell>() };
    if !crate::rt::scheduler::wake_local(task) {
        // SAFETY: see above; the new count goes to the remote queue.
        unsafe { Arc::increment_strong_count(ptr.cast::<TaskCell>()) };
        // SAFETY: the count just added.
        crate::rt::scheduler::wake_task(unsafe { Arc::from_raw(ptr.cast::<TaskCell>()) });
    }
}

unsafe fn waker_drop(ptr: *const ()) {
    // SAFETY: see above.
    let task = unsafe { &*ptr.cast::<TaskCell>() };
    if !task.bank_ref() {
        // SAFETY: see above; this gives back the waker's own count.
        unsafe { Arc::decrement_strong_count(ptr.cast::<TaskCell>()) };
    }
}

impl TaskCell {
    /// The bank, when the caller is on this task's loop thread.
    #[inline]
    fn owner_bank<R>(&self, f: impl FnOnce(&Local) -> R) -> Option<R> {
        crate::rt::scheduler::with_core(|core| self.local_if_owner(core).map(f)).flatten()
    }

    /// Takes a banked strong count for a new waker; false if there is none
    /// (or the caller is not on the owner thread).
    #[inline]
    fn take_spare_ref(&self) -> bool {
        self.owner_bank(|local| local.bank.take()).unwrap_or(false)
    }

    /// Banks a strong count a waker is giving back; false if the bank is
    /// closed or the caller is not on the owner thread (then the caller
    /// releases the count itself).
    #[inline]
    pub(crate) fn bank_ref(&self) -> bool {
        self.owner_bank(|local| local.bank.deposit())
            .unwrap_or(false)
    }

    /// Releases `task`'s reference on its owner thread: into the bank while
    /// it is open, else for real.
    #[inline]
    pub(crate) fn release_on_owner(task: Arc<TaskCell>, core: &Core) {
        if task.local(core).bank.deposit() {
            std::mem::forget(task); // its count is in the bank now
        }
    }

    /// Closes the bank and releases its counts: the task is leaving its
    /// loop's table. The caller still holds a reference.
    pub(crate) fn close_bank(&self, local: &Local) {
        for _ in 0..local.bank.close() {
            // SAFETY: each banked count is a real strong count of this
            // `Arc` allocation; the caller's own reference keeps the count
            // above zero throughout.
            unsafe { Arc::decrement_strong_count(self) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The task's `Arc`, taken inside the fiber.
    fn this_task() -> Arc<TaskCell> {
        crate::rt::scheduler::with_core(|core| core.current_task())
            .flatten()
            .expect("inside a fiber")
    }

    /// A task's references all come back once its loop is gone, including
    /// one queued by a remote wake the loop never got to (once a reference
    /// cycle through the loop's remote queue).
    #[test]
    fn wakes_leave_no_reference_behind() {
        let task = crate::run(|| crate::spawn(this_task).join().unwrap());
        assert_eq!(Arc::strong_count(&task), 1);
        let task = crate::run(|| {
            crate::spawn(|| {
                let task = this_task();
                let waker = waker_ref(&task);
                let clone = (*waker).clone(); // a registered waker, woken by value
                clone.wake();
                waker.wake_by_ref();
                crate::yield_now();
                task
            })
            .join()
            .unwrap()
        });
        assert_eq!(Arc::strong_count(&task), 1, "wake");
        let task = crate::run(|| {
            crate::spawn(|| {
                let task = this_task();
                let waker = waker_ref(&task);
                let away = (*waker).clone();
                std::thread::spawn(move || away.wake()).join().unwrap();
                crate::yield_now();
                task
            })
            .join()
            .unwrap()
        });
        assert_eq!(Arc::strong_count(&task), 1, "remote wake");
    }

    #[test]
    fn banked_waker_counts_are_all_given_back() {
        let task = crate::run(|| {
            let fiber = crate::spawn(|| {
                let task = this_task();
                let waker = waker_ref(&task);
                // Owner-thread clones, wakes and drops cycle through the bank.
                for _ in 0..100 {
                    let clones: Vec<Waker> = (0..5).map(|_| (*waker).clone()).collect();
                    clones.into_iter().for_each(Waker::wake);
                    drop((*waker).clone());
                    crate::yield_now();
                }
                // A clone dropped on another thread releases for real.
                let away = (*waker).clone();
                std::thread::spawn(move || drop(away)).join().unwrap();
                // And one woken there queues the task remotely.
                let away = (*waker).clone();
                std::thread::spawn(move || away.wake()).join().unwrap();
                crate::yield_now();
                task
            });
            fiber.join().unwrap()
        });
        // The loop is gone: only our reference is left, nothing leaked.
        assert_eq!(Arc::strong_count(&task), 1);
    }
}
