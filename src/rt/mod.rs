//! The private core: the scheduler and its ready queue, the task cell and
//! its wakers, the reactor, timers and the one waiting mechanism. Everything
//! user-facing (fibers, async tasks, sockets, sync primitives) is built on
//! these; nothing here reaches up into them. The parts of the core may use
//! each other (the scheduler runs tasks, a task's waker queues it on the
//! scheduler): that one cycle is kept inside this module.

pub(crate) mod coro;
pub(crate) mod diag;
pub(crate) mod lock;
pub(crate) mod loom;
pub(crate) mod pool;
pub(crate) mod reactor;
pub(crate) mod scheduler;
pub(crate) mod sim;
pub(crate) mod stacks;
pub(crate) mod task;
pub(crate) mod timer;
#[cfg(feature = "tracing")]
pub(crate) mod trace;
pub(crate) mod wait;
