//! A task's shared state (a fiber's or an async task's): the cell, its state
//! bits and output hand-off, its waker and the waker's reference bank, and
//! why a join can fail. The handles users hold are in `crate::task`.

mod bank;
mod cell;
mod error;
mod state;
mod waker;

pub(crate) use cell::{boxed_future, closure, Body, BoxFuture, Closure, Local, Output, TaskCell};
pub(crate) use error::payload_message;
pub use error::JoinError;
pub(crate) use waker::waker_ref;
