//! [`LoopBuilder`]: an [`EventLoop`] with its diagnostics chosen in code
//! rather than (or on top of) the environment (`docs/diagnostics.md`).

use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use super::EventLoop;
use crate::rt::diag::Config;
use crate::rt::scheduler::{self, Core};

/// Configures and creates this thread's [`EventLoop`]. It starts from what
/// the environment asks for (`FIBERLOOP_BLOCKING_MS`, `FIBERLOOP_STALL_MS`,
/// `FIBERLOOP_DUMP_ON_SIGQUIT`, `FIBERLOOP_TRACE`); each method overrides
/// one setting.
///
/// ```
/// use std::time::Duration;
///
/// let event_loop = fiberloop::EventLoop::builder()
///     .blocking_threshold(Some(Duration::from_millis(100)))
///     .stall_report_after(None)
///     .build()
///     .unwrap();
/// assert_eq!(event_loop.run_until_complete(|| 1 + 1), 2);
/// ```
#[derive(Debug, Clone)]
pub struct LoopBuilder {
    pub(crate) config: Config,
    trace: Option<PathBuf>,
    virtual_time: bool,
    seed: Option<u64>,
}

impl Default for LoopBuilder {
    fn default() -> LoopBuilder {
        LoopBuilder::new()
    }
}

impl LoopBuilder {
    /// The settings the environment asks for.
    pub fn new() -> LoopBuilder {
        LoopBuilder {
            config: Config::from_env(),
            trace: std::env::var_os("FIBERLOOP_TRACE")
                .filter(|path| !path.is_empty())
                .map(PathBuf::from),
            virtual_time: false,
            seed: None,
        }
    }

    /// Report any fiber, task or callback that holds the loop longer than
    /// `threshold` without giving it back, with where it is while it holds
    /// it (`None`: off, the default). A watchdog thread does the watching.
    pub fn blocking_threshold(mut self, threshold: Option<Duration>) -> LoopBuilder {
        self.config.blocking = threshold.filter(|t| !t.is_zero());
        self
    }

    /// Report, after `quiet` of idleness with no timer set, parked tasks that
    /// nothing in the loop can wake (`None`: off). The default is 10 s.
    pub fn stall_report_after(mut self, quiet: Option<Duration>) -> LoopBuilder {
        self.config.stall = quiet.filter(|q| !q.is_zero());
        self
    }

    /// Write a dump of the loop to stderr each time the process gets
    /// `SIGQUIT` (Ctrl-\\ in a terminal), as Go does; off by default. The
    /// loop then keeps a small async task waiting for the signal.
    pub fn dump_on_sigquit(mut self, on: bool) -> LoopBuilder {
        self.config.dump_on_sigquit = on;
        self
    }

    /// Write the scheduler trace to `path` (`None`: off, the default unless
    /// `FIBERLOOP_TRACE` names a file): every run of every task with why it
    /// started and stopped, who woke whom, and the loop's own polls and
    /// timers. A path ending in `.txt` gets the text form (one line per
    /// slice, logical timestamps); any other gets Chrome trace-event JSON
    /// for ui.perfetto.dev or `chrome://tracing`. Loops tracing to the same
    /// path share the file. It is written when the loop is about to sleep
    /// and when it closes (`docs/tracing.md`).
    pub fn trace(mut self, path: Option<PathBuf>) -> LoopBuilder {
        self.trace = path;
        self
    }

    /// Run the loop as a simulation ([`fiberloop::sim`](crate::sim)): its
    /// clock is virtual, and jumps to the next timer as soon as every task
    /// is blocked on timers or on the loop's own primitives. Off by default.
    pub fn virtual_time(mut self, on: bool) -> LoopBuilder {
        self.virtual_time = on;
        self
    }

    /// With a seed, the loop is a simulation (as with
    /// [`virtual_time`](Self::virtual_time)) whose ready tasks run in an
    /// order drawn from `seed`, and whose notifications wake a waiter drawn
    /// from it, instead of first come, first served. The same seed gives
    /// the same order. `None` (the default): FIFO.
    pub fn seed(mut self, seed: Option<u64>) -> LoopBuilder {
        self.seed = seed;
        self
    }

    /// True if the loop would be a simulation.
    fn simulates(&self) -> bool {
        self.virtual_time || self.seed.is_some()
    }

    /// `InvalidInput` if these settings ask for a simulation: a runtime's
    /// loops cannot be one (a simulation is one loop, with one clock).
    pub(crate) fn refuse_simulation(&self) -> io::Result<()> {
        if self.simulates() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a simulation runs on one loop, with one clock: use fiberloop::sim, not a runtime",
            ));
        }
        Ok(())
    }

    /// Creates this thread's loop.
    ///
    /// # Errors
    /// `AlreadyExists` if the thread has a loop already (one per thread);
    /// otherwise what creating the poller (`epoll`/`kqueue`), the trace
    /// file, or the `SIGQUIT` listener, returned.
    pub fn build(self) -> io::Result<EventLoop> {
        crate::sys::fault::install();
        crate::fiber::install_panic_hook();
        let core = Rc::new(Core::new()?);
        if let Some(path) = &self.trace {
            core.start_trace(path)?;
        }
        scheduler::install(core.clone())?;
        core.configure(self.config);
        let event_loop = EventLoop { core };
        if self.config.dump_on_sigquit {
            event_loop.dump_on_sigquit()?;
        }
        if self.simulates() {
            // Last: nothing after this can fail and leave the thread simulating.
            crate::rt::sim::start(self.seed);
            event_loop.core.diag.slow.set(true);
        }
        Ok(event_loop)
    }
}
