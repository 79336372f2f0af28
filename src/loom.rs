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
