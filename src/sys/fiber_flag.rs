//! One thread-local word, "a fiber runs on this thread", for the `hook`
//! feature's fast path, in the initial thread-local block of the executable
//! and read with one instruction.
//!
//! Why not a `thread_local!`: compiled into an rlib, Rust's thread-locals use
//! the general-dynamic TLS model, a call to `__tls_get_addr` that the linker
//! relaxes to two instructions only after the compiler has already saved
//! every argument register around it. For an interposed `recv` that is about
//! 25 instructions more on every call; this word (local-exec, valid in the
//! executable, which is where the hooks live) is one. x86_64 only; other
//! architectures use a `thread_local!` (correct, not as cheap).

#[cfg(target_arch = "x86_64")]
mod imp {
    // The word itself: 8 zero bytes in the executable's .tbss.
    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".hidden fiberloop_hook_in_fiber",
        ".globl fiberloop_hook_in_fiber",
        ".type fiberloop_hook_in_fiber,@object",
        ".size fiberloop_hook_in_fiber,8",
        "fiberloop_hook_in_fiber:",
        ".zero 8",
        ".popsection",
    );

    /// True while a fiber runs on this thread.
    #[inline(always)]
    pub(crate) fn get() -> bool {
        let value: u64;
        // SAFETY: reads this thread's copy of the 8-byte word defined above,
        // at its fixed offset from the thread pointer (%fs); touches nothing
        // else.
        unsafe {
            core::arch::asm!(
                "movq %fs:fiberloop_hook_in_fiber@tpoff, {}",
                out(reg) value,
                options(att_syntax, nostack, readonly, preserves_flags),
            );
        }
        value != 0
    }

    /// Sets this thread's word.
    #[inline(always)]
    pub(crate) fn set(on: bool) {
        let value = u64::from(on);
        // SAFETY: writes this thread's copy of the word defined above and
        // nothing else.
        unsafe {
            core::arch::asm!(
                "movq {}, %fs:fiberloop_hook_in_fiber@tpoff",
                in(reg) value,
                options(att_syntax, nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    use std::cell::Cell;

    thread_local! {
        static IN_FIBER: Cell<bool> = const { Cell::new(false) };
    }

    /// True while a fiber runs on this thread.
    #[inline(always)]
    pub(crate) fn get() -> bool {
        IN_FIBER.with(Cell::get)
    }

    /// Sets this thread's word.
    #[inline(always)]
    pub(crate) fn set(on: bool) {
        IN_FIBER.with(|flag| flag.set(on));
    }
}

pub(crate) use imp::{get, set};
