//! A task's shared state (a fiber's or an async task's), its state bits and
//! its waker's reference bank; the handles users hold are re-exported from
//! `crate::task`.

mod bank;
mod raw;
mod state;

pub(crate) use raw::{waker_ref, Body, BoxFuture, Closure, Local, Output, TaskCell};
pub use raw::{Fiber, FiberId, JoinError, JoinHandle};
