//! A runtime of several loops, one per thread: [`Runtime`], its
//! [`Builder`], and the `Send + Clone` [`RuntimeHandle`] that spawns onto it
//! from anywhere.
//!
//! ```
//! let rt = fiberloop::Runtime::builder().loops(2).build().unwrap();
//! let total = rt.run(|| {
//!     let rt = fiberloop::RuntimeHandle::current();
//!     let parts: Vec<_> = (0..8u64).map(|i| rt.spawn(move || i * i).unwrap()).collect();
//!     parts.into_iter().map(|p| p.join().unwrap()).sum::<u64>()
//! });
//! assert_eq!(total, 140);
//! ```
//!
//! # What moves between threads, and what never does
//!
//! A fiber that has started never leaves its loop's thread: its stack holds
//! frames that may have cached the address of a thread-local (LLVM may keep
//! it across a call that switches stacks), so resuming it on another thread
//! would read the wrong thread's data. Work moves only *before* it starts:
//!
//! - [`RuntimeHandle::spawn`] takes a `Send` closure. Until a loop adopts the
//!   task it is only that closure (no stack, no frames), so any loop may take
//!   it: an idle loop steals such tasks from a busy loop's queue. Adoption
//!   makes that loop the task's owner for good.
//! - [`spawn`](crate::spawn) needs no `Send` bound: its closure may hold an
//!   `Rc`, so it stays on the loop that spawned it, and so does everything it
//!   spawns that way.
//! - [`RuntimeHandle::spawn_on`] puts a task on the loop you name; it is
//!   never stolen.
//!
//! The `Send` bound is what the compiler checks. A closure holding an `Rc`
//! cannot go through the runtime:
//!
//! ```compile_fail
//! let rt = fiberloop::Runtime::builder().loops(2).build().unwrap();
//! let shared = std::rc::Rc::new(1);
//! rt.handle().spawn(move || *shared + 1).unwrap();
//! ```
//!
//! docs/multicore.md has the design, the placement and stealing rules, and
//! what contends as the number of cores grows.

use std::fmt;
use std::future::Future;
use std::io;
use std::num::NonZeroUsize;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::{unwrap_main, MAIN_STACK_SIZE};
use crate::remote::closed;
use crate::rt::scheduler::{self, Core, Group, RemoteJob, Shared};
use crate::task::{Body, JoinHandle, Task, TaskCell};

/// Configures and starts a [`Runtime`], in the manner of
/// [`std::thread::Builder`] and tokio's `runtime::Builder`.
#[derive(Debug, Clone)]
pub struct Builder {
    loops: Option<usize>,
    thread_name: String,
    pin: bool,
    diag: super::LoopBuilder,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// One loop per CPU the process may use, threads named `fiberloop-N`,
    /// not pinned.
    pub fn new() -> Builder {
        Builder {
            loops: None,
            thread_name: "fiberloop".to_owned(),
            pin: false,
            diag: super::LoopBuilder::new(),
        }
    }

    /// Each loop's diagnostics, as [`LoopBuilder`](super::LoopBuilder) sets
    /// them; by default what the environment asks for.
    pub fn diagnostics(mut self, settings: super::LoopBuilder) -> Builder {
        self.diag = settings;
        self
    }

    /// How many loops (threads) to run; the default is
    /// [`std::thread::available_parallelism`].
    pub fn loops(mut self, loops: usize) -> Builder {
        self.loops = Some(loops);
        self
    }

    /// The prefix of the loop threads' names: loop `i` runs on a thread named
    /// `{prefix}-{i}`.
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Builder {
        self.thread_name = prefix.into();
        self
    }

    /// Pins loop `i` to the `i`-th CPU the process may run on (round robin
    /// when there are more loops than CPUs). Linux only; elsewhere `build`
    /// fails with `Unsupported`.
    pub fn pin_threads(mut self, pin: bool) -> Builder {
        self.pin = pin;
        self
    }

    /// Starts the loops and waits until every one is ready.
    ///
    /// # Errors
    /// `InvalidInput` for zero loops, or for diagnostics that ask for a
    /// simulation (it runs one loop: use `fiberloop::sim`); otherwise what
    /// starting a thread,
    /// pinning it or creating its poller returned (the loops already started
    /// are stopped again).
    pub fn build(self) -> io::Result<Runtime> {
        self.diag.refuse_simulation()?;
        let count = match self.loops {
            Some(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a runtime needs at least one loop",
                ))
            }
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, NonZeroUsize::get),
        };
        let cpus = if self.pin {
            Some(crate::sys::allowed_cpus()?)
        } else {
            None
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut threads = Vec::with_capacity(count);
        let mut starts = Vec::with_capacity(count);
        let mut failure = None;
        for index in 0..count {
            let cpu = cpus.as_ref().map(|cpus| cpus[index % cpus.len()]);
            let (start_tx, start_rx) = mpsc::channel();
            let ready = ready_tx.clone();
            let spawned = thread::Builder::new()
                .name(format!("{}-{index}", self.thread_name))
                .spawn({
                    let diag = self.diag.clone();
                    move || loop_thread(index, cpu, diag, ready, start_rx)
                });
            match spawned {
                Ok(thread) => {
                    threads.push(thread);
                    starts.push(start_tx);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(ready_tx);
        let mut shared: Vec<Option<Arc<Shared>>> = vec![None; threads.len()];
        for (index, result) in ready_rx.iter() {
            match result {
                Ok(s) => shared[index] = Some(s),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            // Dropping the senders tells the started loops to end at once.
            drop(starts);
            for thread in threads {
                let _ = thread.join();
            }
            return Err(e);
        }
        let group = Group::new(shared.into_iter().map(|s| s.expect("reported")).collect());
        for start in starts {
            // A loop thread waits for this; it cannot have gone.
            let _ = start.send(group.clone());
        }
        Ok(Runtime {
            handle: RuntimeHandle { group },
            threads,
        })
    }
}

/// The body of loop thread `index`: creates its loop, reports it, waits for
/// the group, then runs until the runtime stops it; dropping the loop at
/// the end unwinds its fibers.
fn loop_thread(
    index: usize,
    cpu: Option<usize>,
    diag: super::LoopBuilder,
    ready: mpsc::Sender<(usize, io::Result<Arc<Shared>>)>,
    start: mpsc::Receiver<Arc<Group>>,
) {
    let made = cpu
        .map_or(Ok(()), crate::sys::pin_to_cpu)
        .and_then(|()| diag.build());
    let event_loop = match made {
        Ok(event_loop) => event_loop,
        Err(e) => {
            let _ = ready.send((index, Err(e)));
            return;
        }
    };
    let _ = ready.send((index, Ok(event_loop.core.shared().clone())));
    drop(ready);
    let Ok(group) = start.recv() else { return };
    event_loop.core.join_group(group, index);
    event_loop.run_forever();
}

/// Several event loops, one per thread, sharing the work of one server.
///
/// Dropping it (or [`shutdown`](Self::shutdown)) stops every loop and waits
/// for its thread: each loop unwinds its fibers as a single loop's teardown
/// does. A panic in a fiber is reported to whoever joins that fiber and
/// harms no other fiber or loop.
pub struct Runtime {
    handle: RuntimeHandle,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Runtime {
    /// A runtime with the default [`Builder`]: one loop per available CPU.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A [`Builder`] to configure one.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The handle that spawns onto this runtime; clone it freely.
    pub fn handle(&self) -> &RuntimeHandle {
        &self.handle
    }

    /// Runs `f` as a main fiber on loop 0 and blocks the calling thread (or
    /// fiber) until it returns; returns its value. Other fibers keep running
    /// afterwards, until the runtime is dropped.
    ///
    /// # Panics
    /// Re-raises a panic of `f`; panics if the runtime has been shut down.
    pub fn run<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let closure = crate::task::closure(f);
        let main = self
            .handle
            .pinned(0, Body::NotStarted(closure), MAIN_STACK_SIZE)
            .map(JoinHandle::<T>::new)
            .unwrap_or_else(|e| panic!("fiberloop::Runtime::run: {e}"));
        self.unwrap_main(main)
    }

    /// Runs `future` as an async task on loop 0 and blocks the calling thread
    /// (or fiber) until it completes; the async twin of [`run`](Self::run).
    ///
    /// # Panics
    /// As [`run`](Self::run).
    pub fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let future = crate::task::boxed_future(future);
        let main = self
            .handle
            .pinned(0, Body::Future(future), 0)
            .map(JoinHandle::<F::Output>::new)
            .unwrap_or_else(|e| panic!("fiberloop::Runtime::block_on: {e}"));
        self.unwrap_main(main)
    }

    /// The main task's value, or, if it failed after a loop found a
    /// deadlock (its tasks were cancelled), that report raised.
    fn unwrap_main<T: 'static>(&self, main: JoinHandle<T>) -> T {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unwrap_main(main)));
        result.unwrap_or_else(|payload| match self.handle.group.deadlock() {
            Some(report) => panic!("{report}"),
            None => std::panic::resume_unwind(payload),
        })
    }

    /// Stops every loop, unwinding its fibers, and waits for the threads.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for index in 0..self.handle.group.len() {
            let stop = RemoteJob::Call(Box::new(|| {
                scheduler::with_core(Core::stop);
            }));
            let _ = self.handle.group.shared(index).send(stop);
        }
        let me = thread::current().id();
        for thread in self.threads.drain(..) {
            // Dropped by one of its own fibers: that loop ends once the fiber
            // returns; it cannot wait for itself.
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("loops", &self.handle.loops())
            .finish_non_exhaustive()
    }
}

/// A `Send + Sync + Clone` handle to a [`Runtime`]: spawns onto it from any
/// thread, from a fiber of any of its loops or of another loop.
#[derive(Clone)]
pub struct RuntimeHandle {
    group: Arc<Group>,
}

/// What one loop of a runtime reported at its last turn
/// ([`RuntimeHandle::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopStats {
    /// The loop's index.
    pub index: usize,
    /// Live tasks on the loop (started or not), as of its last turn.
    pub tasks: usize,
    /// Runtime tasks queued on the loop that no loop has adopted yet.
    pub queued: usize,
    /// Tasks this loop has stolen from the other loops' queues, in all.
    pub stolen: u64,
}

impl RuntimeHandle {
    /// The runtime of the calling thread's loop.
    ///
    /// # Panics
    /// Outside a runtime's loop thread; see [`try_current`](Self::try_current).
    pub fn current() -> RuntimeHandle {
        RuntimeHandle::try_current()
            .expect("fiberloop::RuntimeHandle::current called outside a runtime's loop")
    }

    /// The runtime of the calling thread's loop, or `None` on a thread that
    /// is not one of a runtime's loops.
    pub fn try_current() -> Option<RuntimeHandle> {
        scheduler::with_core(|core| {
            core.group().map(|(group, _)| RuntimeHandle {
                group: group.clone(),
            })
        })
        .flatten()
    }

    /// The index of the calling thread's loop in its runtime, or `None`.
    pub fn current_loop() -> Option<usize> {
        scheduler::with_core(|core| core.group().map(|(_, index)| *index)).flatten()
    }

    /// Number of loops.
    pub fn loops(&self) -> usize {
        self.group.len()
    }

    /// Spawns a fiber on the runtime. From one of the runtime's own fibers it
    /// is queued on that fiber's loop; from anywhere else, on the less loaded
    /// of two loops picked at random. A loop that runs out of work may take
    /// it from there until it starts; once started it stays on the loop that
    /// started it.
    ///
    /// # Errors
    /// `NotConnected` once the runtime has shut down.
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let closure = crate::task::closure(f);
        self.placed(Body::NotStarted(closure)).map(JoinHandle::new)
    }

    /// Spawns a `Send` future as an async task, placed as
    /// [`spawn`](Self::spawn) places a fiber (and movable until first polled).
    ///
    /// # Errors
    /// `NotConnected` once the runtime has shut down.
    #[track_caller]
    pub fn spawn_future<F>(&self, future: F) -> io::Result<Task<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let future = crate::task::boxed_future(future);
        let cell = self.placed(Body::Future(future))?;
        Ok(Task::new(JoinHandle::new(cell)))
    }

    /// Spawns a fiber on loop `index`, where it stays (it is never stolen).
    ///
    /// # Errors
    /// `InvalidInput` for an index out of range; `NotConnected` once the
    /// runtime has shut down.
    #[track_caller]
    pub fn spawn_on<F, T>(&self, index: usize, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let closure = crate::task::closure(f);
        self.pinned(index, Body::NotStarted(closure), crate::DEFAULT_STACK_SIZE)
            .map(JoinHandle::new)
    }

    /// Runs `f(index)` in a fiber on every loop (a listener per loop, say);
    /// returns their handles in loop order.
    ///
    /// # Errors
    /// `NotConnected` once the runtime has shut down.
    pub fn on_each_loop<F, T>(&self, f: F) -> io::Result<Vec<JoinHandle<T>>>
    where
        F: Fn(usize) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        let f = Arc::new(f);
        (0..self.loops())
            .map(|index| {
                let f = f.clone();
                self.spawn_on(index, move || f(index))
            })
            .collect()
    }

    /// Serves `addr` on every loop: binds a `SO_REUSEPORT` listener per loop
    /// (port 0 is picked once, for all), so the kernel spreads connections
    /// over the loops, and runs `serve(listener)` in a fiber on each. Returns
    /// the bound address and the fibers' handles, in loop order. Binding
    /// happens here, so an address in use is reported to the caller.
    ///
    /// ```no_run
    /// use std::io::{Read, Write};
    ///
    /// let rt = fiberloop::Runtime::new()?;
    /// let (addr, servers) = rt.handle().listen_each_loop("127.0.0.1:7000".parse().unwrap(), |listener| {
    ///     for stream in listener.incoming().flatten() {
    ///         fiberloop::spawn(move || {
    ///             let mut stream = stream;
    ///             let mut buf = [0; 4096];
    ///             while let Ok(n @ 1..) = stream.read(&mut buf) {
    ///                 if stream.write_all(&buf[..n]).is_err() {
    ///                     break;
    ///                 }
    ///             }
    ///         });
    ///     }
    /// })?;
    /// println!("echo on {addr}");
    /// servers.into_iter().for_each(|s| drop(s.join()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// What binding reports (`AddrInUse` when a socket without
    /// `SO_REUSEPORT` holds the address); `NotConnected` once the runtime
    /// has shut down.
    pub fn listen_each_loop<F, T>(
        &self,
        addr: std::net::SocketAddr,
        serve: F,
    ) -> io::Result<(std::net::SocketAddr, Vec<JoinHandle<T>>)>
    where
        F: Fn(crate::net::TcpListener) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        let first = crate::net::TcpListener::bind_reuseport(addr)?;
        let bound = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..self.loops() {
            listeners.push(crate::net::TcpListener::bind_reuseport(bound)?);
        }
        let serve = Arc::new(serve);
        let servers = listeners
            .into_iter()
            .enumerate()
            .map(|(index, listener)| {
                let serve = serve.clone();
                // Each listener registers with the loop whose fiber first
                // waits on it: its own.
                self.spawn_on(index, move || serve(listener))
            })
            .collect::<io::Result<_>>()?;
        Ok((bound, servers))
    }

    /// A handle to loop `index` alone (`call_soon_threadsafe`, pinned spawns).
    pub fn remote(&self, index: usize) -> Option<crate::RemoteHandle> {
        (index < self.loops()).then(|| crate::RemoteHandle::new(self.group.shared(index).clone()))
    }

    /// A dump of every loop (see [`Handle::dump`](super::Handle::dump)); a
    /// loop that does not answer within `patience` is named instead.
    pub fn dump(&self, patience: Duration) -> String {
        (0..self.loops())
            .map(|index| {
                match crate::RemoteHandle::new(self.group.shared(index).clone()).dump(patience) {
                    Ok(dump) => dump,
                    Err(e) => format!("fiberloop: runtime loop {index}: no dump: {e}\n"),
                }
            })
            .collect()
    }

    /// What each loop reported at its last turn, in loop order.
    pub fn stats(&self) -> Vec<LoopStats> {
        (0..self.loops())
            .map(|index| {
                let (tasks, queued, stolen) = self.group.shared(index).stats();
                LoopStats {
                    index,
                    tasks,
                    queued,
                    stolen,
                }
            })
            .collect()
    }

    /// True if the caller runs on one of this runtime's loops.
    fn is_home(&self) -> bool {
        scheduler::with_core(|core| {
            core.group()
                .is_some_and(|(group, _)| Arc::ptr_eq(group, &self.group))
        })
        .unwrap_or(false)
    }

    /// Queues an unowned task on the loop `Group::place` picks.
    #[track_caller]
    fn placed(&self, body: Body) -> io::Result<Arc<TaskCell>> {
        let location = std::panic::Location::caller();
        let cell = Core::remote_task(None, body, crate::DEFAULT_STACK_SIZE, location);
        let queued = if self.is_home() {
            scheduler::with_core(|core| core.push_runtime_task(cell.clone()))
                .expect("home is this thread's loop")
        } else {
            self.group.push(self.group.place(), cell.clone())
        };
        match queued {
            Ok(()) => Ok(cell),
            Err(cell) => {
                cell.abandon(); // never adopted: its body is dropped here
                Err(closed())
            }
        }
    }

    /// Hands a task to loop `index` itself (its inbox): it is never stolen.
    #[track_caller]
    fn pinned(&self, index: usize, body: Body, stack_size: usize) -> io::Result<Arc<TaskCell>> {
        if index >= self.loops() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no loop {index}: the runtime has {}", self.loops()),
            ));
        }
        crate::RemoteHandle::new(self.group.shared(index).clone()).adopt(body, stack_size)
    }
}

impl fmt::Debug for RuntimeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeHandle")
            .field("loops", &self.loops())
            .finish()
    }
}
