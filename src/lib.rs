//! Stackful fibers on a per-thread event loop: write plain blocking-style code
//! (`stream.read(&mut buf)`, `sleep(d)`, `handle.join()`) and let one loop per
//! thread multiplex thousands of fibers over non-blocking sockets.
//!
//! A fiber that would block switches its stack (with [`corosensei`]) back to
//! the loop's scheduler; the scheduler polls readiness (with [`mio`]) and
//! timers and resumes the fibers that can run. This is the gevent / Go model,
//! on one thread per loop.
//!
//! ```
//! use std::time::Duration;
//!
//! fiberloop::run(|| {
//!     let slow = fiberloop::spawn(|| {
//!         fiberloop::sleep(Duration::from_millis(20));
//!         println!("slow done");
//!         2
//!     });
//!     let fast = fiberloop::spawn(|| {
//!         fiberloop::sleep(Duration::from_millis(10));
//!         println!("fast done");
//!         1
//!     });
//!     // join blocks this fiber only; both sleeps overlap.
//!     assert_eq!(fast.join().unwrap() + slow.join().unwrap(), 3);
//! });
//! ```
//!
//! prints
//!
//! ```text
//! fast done
//! slow done
//! ```
//!
//! # The parts
//!
//! What you use (public modules, and the items re-exported at the root):
//!
//! | module | role |
//! |---|---|
//! | [`runtime`] | [`run`], [`EventLoop`], [`Handle`]: `call_soon`, `call_later`, `stop`; [`RemoteHandle`] for other threads; [`Runtime`] and [`RuntimeHandle`]: one loop per core, sharing unstarted work |
//! | the root | fibers: [`spawn`], [`Builder`], [`yield_now`], [`sleep`], [`current`], [`JoinHandle`], [`Fiber`]; [`scope`], [`timeout`]; [`wait`] (a future from a fiber) |
//! | [`task`] | async tasks on the same loop: [`task::spawn`], [`task::Task`], [`block_on`]; the fiber handles ([`JoinHandle`], [`JoinError`], [`Fiber`], [`FiberId`]) |
//! | [`time`] | async [`time::sleep`] and [`time::timeout`] |
//! | [`net`] | blocking-style [`TcpListener`](net::TcpListener), [`TcpStream`](net::TcpStream), [`UdpSocket`](net::UdpSocket), [`TcpSocket`](net::TcpSocket) (options before `listen`/`connect`), and the Unix-domain [`UnixListener`](net::UnixListener), [`UnixStream`](net::UnixStream), [`UnixDatagram`](net::UnixDatagram) |
//! | [`async_net`] | the async face of the sockets (`futures-io` traits) |
//! | [`sync`] | channels, `Mutex`, `RwLock`, `Condvar`, `Semaphore`, `Event`, `Barrier`, `WaitGroup`, `OnceCell`, `Select` — for fibers, tasks and threads |
//! | [`blocking`] | [`unblock`]/[`unblock_async`]: a blocking call on the loop's bounded thread pool, only the caller waits |
//! | [`process`] | subprocesses with loop-driven pipes; `wait` parks only the fiber (pidfd) |
//! | [`signal`] | [`Signals`](signal::Signals): `SIGINT`, `SIGTERM`, ... received in a fiber or a task |
//! | [`streams`] | asyncio's streams: `open_connection`/`start_server`, line reading, `write` + `drain` |
//! | [`transport`] | PEP 3156's callback style: a [`Protocol`](transport::Protocol) driven by the loop over a [`Transport`](transport::Transport) (TCP or Unix), with flow control |
//! | [`generator`] | stackful generators with two-way `send`, `throw`, `close`, `yield_from` (PEP 255/342/380) |
//! | [`stack`] | fiber stack sizes and the idle-stack budget |
//! | diagnostics | [`Handle::dump`] (every task, what it waits on, each fiber's backtrace), the deadlock report that ends `run`, the blocking detector (`FIBERLOOP_BLOCKING_MS`), [`LoopBuilder`](runtime::LoopBuilder) (`docs/diagnostics.md`) |
//! | [`sim`] | deterministic tests: virtual time that jumps when every task is blocked, a seeded schedule a seed replays, [`sim::check`] over many seeds, in-memory connections (`docs/testing.md`) |
//! | scheduler trace | `FIBERLOOP_TRACE=path.json` (or [`LoopBuilder::trace`](runtime::LoopBuilder::trace)): every run of every task, why it started and stopped, wake flows, the loop's polls and timers, for Perfetto; `.txt` for a text form; [`Handle::metrics`] for counters (`docs/tracing.md`) |
//! | `tracing` (Cargo feature `tracing`) | `tracing` spans per fiber: a task runs in its spawn span, a fiber's entered spans stay with it across parks; spawn/park/wake/finish as TRACE events (`docs/tracing.md`) |
//! | `hook` (Cargo feature `hook`) | unmodified blocking code in fibers: libc's blocking socket, pipe and sleep calls park only the calling fiber (`docs/hook.md`) |
//!
//! Underneath, two private layers, with arrows pointing down only
//! (`docs/architecture.md` draws them): `rt`, the core — the scheduler and
//! its ready queue, the task cell and its waker, the coroutine under each
//! fiber, the reactor, timers, the one waiting mechanism, the stack and
//! thread pools; and `sys`, the raw `libc` — stack mappings, the
//! stack-overflow handler, the signal pipe, `poll(2)`, `send(2)`.
//!
//! # Threads
//!
//! One loop per OS thread; a fiber never moves to another thread (LLVM may cache
//! a thread-local's address across a stack switch, so a migrated fiber could
//! touch the old thread's thread-locals). That is why a fiber's closure need not
//! be `Send`. For several cores, a [`Runtime`] runs a loop per thread: work
//! spawned through its [`RuntimeHandle`] is `Send` and may move to an idle
//! loop until it starts, never after (`docs/multicore.md`).
//!
//! # Stacks
//!
//! Each fiber gets a guarded stack ([`DEFAULT_STACK_SIZE`] by default) from a
//! per-thread pool when it first runs, and gives it back when it ends. An
//! overflow hits the guard page and aborts the process with a message naming
//! the fiber. Each live stack costs two kernel memory mappings, and Linux's
//! default `vm.max_map_count` (65530) caps them; keeping 4,096 mappings for
//! the rest of the process, at most 30,717 fibers can be alive at once.
//! `spawn` reserves a stack for each fiber, so spawning past that returns an
//! error that names the limit and how to raise it.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    clippy::undocumented_unsafe_blocks
)]
#![doc(test(attr(deny(warnings))))]

#[cfg(not(unix))]
compile_error!("fiberloop supports Unix only (it needs mmap, signals and poll)");

pub mod async_net;
pub mod blocking;
mod fiber;
pub mod generator;
#[cfg(feature = "hook")]
pub mod hook;
pub mod net;
pub mod process;
mod remote;
mod rt;
pub mod runtime;
mod scope;
pub mod signal;
pub mod sim;
pub mod stack;
pub mod streams;
pub mod sync;
mod sys;
pub mod task;
pub mod time;
pub mod transport;

pub use blocking::{unblock, unblock_async, Unblock};
pub use fiber::{current, sleep, sleep_until, spawn, try_current, yield_now, Builder};
pub use remote::RemoteHandle;
pub use rt::wait::{wait, WaitError};
pub use runtime::{
    block_on, handle, run, try_handle, CallbackHandle, EventLoop, Handle, Runtime, RuntimeHandle,
};
pub use scope::{scope, timeout, Scope, ScopedJoinHandle};
pub use stack::DEFAULT_STACK_SIZE;
pub use task::{Fiber, FiberId, JoinError, JoinHandle};

/// The error a blocking call returns (inside an `io::Error` of kind `Other`)
/// when its fiber is being cancelled and is already unwinding.
///
/// Test for it with `err.get_ref().is_some_and(|e| e.is::<fiberloop::Cancelled>())`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fiber cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// The README's example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
