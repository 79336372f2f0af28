//! The synchronisation types of the state machines that `loom` models
//! (`tests/loom_*.rs`): std's in a normal build, loom's under `--cfg loom`.
//! Only code written against this module is model-checked.

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::{atomic, Mutex, MutexGuard};
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) use loom::sync::{atomic, Mutex, MutexGuard};
}

#[cfg(not(loom))]
pub(crate) mod cell {
    /// std's `UnsafeCell` with loom's access API.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a pointer to the value; the caller's `unsafe`
        /// block answers for what `f` does with it.
        #[inline]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(loom)]
pub(crate) mod cell {
    pub(crate) use loom::cell::UnsafeCell;
}

/// Runs a loom model through every interleaving with at most two
/// preemptions (tokio's CI bound), which keeps each model to seconds.
#[cfg(all(test, loom))]
pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(f);
}
