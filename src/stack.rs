//! Fiber stacks, as users see them: the default size, the idle budget, and
//! a count for leak checks. The pool itself lives in the core (`rt::stacks`).
//!
//! Each fiber gets a guarded stack (a `PROT_NONE` page below it turns an
//! overflow into a reported abort) when it first runs, and gives it back when
//! it ends; idle stacks are kept per thread for the next fiber, up to
//! [`MAX_IDLE_BYTES`].

pub use crate::rt::stacks::{DEFAULT_STACK_SIZE, MAX_IDLE_BYTES};

/// Number of idle stacks on this thread: those in the pool plus those of the
/// loop's idle fiber coroutines. For diagnostics and leak checks: it stays
/// bounded however many fibers come and go.
pub fn idle_count() -> usize {
    crate::rt::stacks::pooled_count()
        + crate::rt::scheduler::with_core(|core| core.idle_count()).unwrap_or(0)
}
