//! The idle coroutines of a loop: a coroutine whose fiber ended waits at its
//! root for the next fiber of the same stack size, and the stack reservation
//! each fiber holds from spawn to finish.

use std::io;
use std::mem;

use super::Core;
use crate::rt::coro::Coro;
use crate::rt::stacks as stack;

impl Core {
    #[inline]
    pub(super) fn has_idle(&self, size: usize) -> bool {
        self.idle.borrow().iter().rev().any(|c| c.size() == size)
    }

    /// A coroutine for a fiber that is starting: an idle one of its stack
    /// size, or a new one. Its stack is reserved (taken here for a fiber that
    /// was handed in from another thread). At the limit on mapped stacks,
    /// idle stacks of other sizes are unmapped to make room, once.
    #[inline]
    pub(super) fn coroutine_for(&self, local: &crate::rt::task::Local) -> io::Result<Coro> {
        if !local.reserved.get() {
            self.reservations.reserve(local.stack_size)?;
            local.reserved.set(true);
        }
        match self.take_idle(local.stack_size) {
            Ok(coro) => Ok(coro),
            Err(_) => self.take_idle_after_trim(local.stack_size),
        }
    }

    /// [`take_idle`](Self::take_idle) again after unmapping every idle stack
    /// of this thread (pool and idle coroutines): the rare path, kept out of
    /// the way of the common one.
    #[cold]
    #[inline(never)]
    fn take_idle_after_trim(&self, size: usize) -> io::Result<Coro> {
        self.retire_idle(drop);
        stack::trim();
        self.take_idle(size)
    }

    /// Ends a finished (or never started) fiber's stack reservation.
    #[inline]
    pub(super) fn unreserve(&self, local: &crate::rt::task::Local) {
        if local.reserved.replace(false) {
            self.reservations.unreserve();
        }
    }

    /// An idle coroutine of `size`, or a new one.
    #[inline]
    fn take_idle(&self, size: usize) -> io::Result<Coro> {
        let mut idle = self.idle.borrow_mut();
        let found = match idle.last() {
            Some(last) if last.size() == size => Some(idle.len() - 1),
            _ => idle.iter().rposition(|c| c.size() == size),
        };
        match found {
            Some(index) => {
                stack::release_idle(size);
                Ok(idle.swap_remove(index))
            }
            None => {
                drop(idle);
                Ok(Coro::new(stack::take(size)?))
            }
        }
    }

    /// Keeps a coroutine whose fiber ended for the next fiber, or retires it
    /// (its stack unmapped) when the thread's idle budget is spent: the pool
    /// and the idle coroutines share one budget.
    #[inline]
    pub(super) fn park_idle(&self, coro: Coro) {
        if !stack::hold_idle(coro.size()) {
            drop(coro.retire());
            return;
        }
        self.idle.borrow_mut().push(coro);
    }

    /// Ends every idle coroutine (it returns from its root) and hands its
    /// stack, no longer counted as idle, to `each`.
    pub(super) fn retire_idle(&self, mut each: impl FnMut(stack::Stack)) {
        let idle = mem::take(&mut *self.idle.borrow_mut());
        for coro in idle {
            stack::release_idle(coro.size());
            each(coro.retire());
        }
    }

    /// Number of idle coroutines (for diagnostics and leak checks).
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.borrow().len()
    }
}
