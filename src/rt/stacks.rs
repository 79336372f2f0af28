//! The per-thread stack pool, and the process-wide reservations that keep
//! live stacks under the kernel's mapping limit.
//!
//! A fiber needs a stack only from the moment it first runs until it finishes,
//! so spawning stores just the closure; the scheduler takes a stack from this
//! pool when the fiber starts and gives it back when the fiber ends. A fresh
//! `mmap`ed stack costs about 10 µs (two syscalls and page faults on first
//! touch); a pooled one costs a `Vec::pop`.
//!
//! The pool is a thread-local because stacks never cross threads (a started fiber
//! never migrates) and because generators use it outside any event loop.
//!
//! Idle stacks keep the pages their last fiber dirtied. That is what makes reuse
//! cheap, and it is bounded: at most [`MAX_IDLE_BYTES`] of idle stacks are kept
//! per thread, counting both the pool's free stacks and the stacks of the
//! loop's idle coroutines (one budget, [`hold_idle`]); beyond that returned
//! stacks are unmapped.
//!
//! # The limit on live stacks
//!
//! Each mapped stack costs two kernel mappings, and `vm.max_map_count`
//! (65530 by default) bounds them per process, so about 30 K stacks can be
//! mapped at once (see `sys::stack`). A fiber has no stack until it first
//! runs, so `spawn` *reserves* one: it counts the fiber against that limit
//! and fails with an error naming `vm.max_map_count` when every stack is
//! spoken for, rather than handing out a fiber that could never run. The
//! reservation ends when the fiber does. Loops take reservations from the
//! process-wide count in small blocks, so a spawn touches no shared counter.

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sys::stack::GuardedStack;

pub(crate) use crate::sys::stack::GuardedStack as Stack;

/// Default usable stack size of a fiber: 64 KiB.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;

/// Idle stacks kept per thread, in bytes of address space (64 MiB: 1,024
/// default-size stacks).
pub const MAX_IDLE_BYTES: usize = 64 * 1024 * 1024;

/// Free stacks of one size.
#[derive(Debug, Default)]
struct SizeClass {
    size: usize,
    free: Vec<GuardedStack>,
}

/// Free stacks by usable size. Almost every program uses one or two sizes, so a
/// short vector beats a map.
#[derive(Debug, Default)]
struct Pool {
    classes: Vec<SizeClass>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
    /// Bytes of idle stacks this thread keeps: the pool's and its loop's
    /// idle coroutines', under one [`MAX_IDLE_BYTES`] budget.
    static IDLE_BYTES: Cell<usize> = const { Cell::new(0) };
}

/// Counts an idle stack of `size` bytes against this thread's budget; false
/// (and nothing counted) when it would exceed [`MAX_IDLE_BYTES`].
#[inline]
pub(crate) fn hold_idle(size: usize) -> bool {
    IDLE_BYTES
        .try_with(|held| {
            let fits = held.get() + size <= MAX_IDLE_BYTES;
            if fits {
                held.set(held.get() + size);
            }
            fits
        })
        .unwrap_or(false)
}

/// Uncounts an idle stack of `size` bytes (it is in use again, or unmapped).
#[inline]
pub(crate) fn release_idle(size: usize) {
    let _ = IDLE_BYTES.try_with(|held| held.set(held.get().saturating_sub(size)));
}

/// Takes a stack with at least `size` usable bytes, reusing an idle one if any.
pub(crate) fn take(size: usize) -> io::Result<Stack> {
    let size = crate::sys::stack::usable_size(size)?;
    let reused = POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let stack = pool.class(size).free.pop();
        if stack.is_some() {
            release_idle(size);
        }
        stack
    });
    match reused {
        Some(stack) => Ok(stack),
        None => GuardedStack::new(size),
    }
}

/// Reservations counted process-wide: fibers holding a stack or promised
/// one, plus the spare reservations loops keep (below).
static RESERVED: AtomicUsize = AtomicUsize::new(0);

/// A loop takes reservations from [`RESERVED`] in blocks of this many and
/// hands them out one by one, so that a spawn costs no atomic operation on a
/// counter every loop shares. A loop keeps fewer than `2 * BLOCK` spares;
/// the limit may refuse a spawn that many reservations early.
const BLOCK: usize = 32;

/// One loop's share of the process-wide reservations: its spares, given
/// back when the loop ends.
#[derive(Debug, Default)]
pub(crate) struct Reservations {
    spare: Cell<usize>,
}

impl Reservations {
    /// Promises a stack of `size` usable bytes to a fiber about to be spawned.
    ///
    /// # Errors
    /// `OutOfMemory`, naming `vm.max_map_count`, when as many fibers as
    /// stacks can be mapped already hold or were promised one.
    #[inline]
    pub(crate) fn reserve(&self, size: usize) -> io::Result<()> {
        match self.spare.get() {
            0 => self.refill(size),
            n => {
                self.spare.set(n - 1);
                Ok(())
            }
        }
    }

    /// Takes a block from the process-wide count (or, near the limit, one).
    fn refill(&self, size: usize) -> io::Result<()> {
        let limit = crate::sys::stack::stack_limit();
        for want in [BLOCK, 1] {
            if RESERVED.fetch_add(want, Ordering::Relaxed) + want <= limit {
                self.spare.set(want - 1);
                return Ok(());
            }
            RESERVED.fetch_sub(want, Ordering::Relaxed);
        }
        Err(crate::sys::stack::limit_error(size, limit))
    }

    /// Ends a reservation made by [`reserve`](Self::reserve): its fiber has
    /// finished, or will never start.
    #[inline]
    pub(crate) fn unreserve(&self) {
        let n = self.spare.get() + 1;
        if n >= 2 * BLOCK {
            RESERVED.fetch_sub(BLOCK, Ordering::Relaxed);
            self.spare.set(n - BLOCK);
        } else {
            self.spare.set(n);
        }
    }
}

impl Drop for Reservations {
    fn drop(&mut self) {
        RESERVED.fetch_sub(self.spare.get(), Ordering::Relaxed);
    }
}

/// Unmaps this thread's idle stacks, making room under the limit for a
/// stack of another size.
pub(crate) fn trim() {
    let idle = POOL.with(|pool| std::mem::take(&mut pool.borrow_mut().classes));
    for class in idle {
        release_idle(class.size * class.free.len());
    }
}

/// Returns a stack whose fiber has finished.
pub(crate) fn give_back(stack: Stack) {
    let size = stack.size();
    // A stack dropped here (pool full, or thread exiting) is unmapped.
    let _excess = POOL.try_with(|pool| {
        if !hold_idle(size) {
            return Some(stack);
        }
        pool.borrow_mut().class(size).free.push(stack);
        None
    });
}

/// Number of idle stacks in this thread's pool.
pub(crate) fn pooled_count() -> usize {
    POOL.with(|pool| {
        pool.borrow()
            .classes
            .iter()
            .map(|c| c.free.len())
            .sum::<usize>()
    })
}

impl Pool {
    fn class(&mut self, size: usize) -> &mut SizeClass {
        // The last class used is moved to the front, so the common case (one
        // size, or a run of the same size) is a single comparison.
        if self.classes.first().is_some_and(|c| c.size == size) {
            return &mut self.classes[0];
        }
        match self.classes.iter().position(|c| c.size == size) {
            Some(index) => self.classes.swap(0, index),
            None => {
                self.classes.push(SizeClass {
                    size,
                    free: Vec::new(),
                });
                let last = self.classes.len() - 1;
                self.classes.swap(0, last);
            }
        }
        &mut self.classes[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_stacks_of_the_same_size() {
        let a = take(DEFAULT_STACK_SIZE).unwrap();
        let base = a.guard();
        give_back(a);
        let b = take(DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(b.guard(), base, "the idle stack is handed out again");
        give_back(b);
    }
}
