//! Diagnostics: what each task waits on, the fiber dump, the deadlock and
//! stall reports, and the blocking detector's watchdog.
//!
//! The loop pays for none of it until it is asked, with two exceptions kept
//! small on purpose: a parking fiber writes *what* it waits on into its task
//! ([`WaitCell`], a few stores next to the stack switch), and the loop
//! checks once per batch whether a watchdog watches it (with the blocking
//! detector on, it bumps a progress counter per item: one relaxed store).
//! Everything else (the dump, the wait-for graph, the watchdog) runs only
//! when asked for or when the loop is about to sleep.
//!
//! The parts: this file holds the wait record and the configuration;
//! `dump` the text snapshot of a loop; `deadlock` the wait-for graph and the
//! stall report; `watchdog` the blocking detector's thread and its report.
//! This module reads the scheduler's state; the scheduler calls into it only
//! at the points named in its own docs (park, turn, run).

mod deadlock;
mod dump;
mod record;
mod trace_file;
mod watchdog;

pub(crate) use deadlock::Checks;
pub(crate) use record::{Phase, Queued, Recorder, Stop};
pub(crate) use watchdog::Watched;

use std::cell::Cell;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crate::rt::scheduler;

/// What a parked task waits for: written when it parks, cleared when it
/// resumes, read only by the dump and the deadlock check (on the loop's
/// thread, while the task is suspended).
#[derive(Debug, Clone, Copy)]
pub(crate) enum WaitOn {
    /// A descriptor to become readable (or writable).
    Io { fd: i32, write: bool },
    /// Any of several descriptors (`poll(2)` under the `hook` feature).
    #[cfg(feature = "hook")]
    Poll { fds: usize },
    /// A signal delivery (`fiberloop::signal`).
    Signal,
    /// A value from a channel, named by its address.
    Recv { channel: usize },
    /// Room in a channel.
    Send { channel: usize },
    /// A fiber's wait for a `sync::Mutex`, named by the address of its
    /// holder record: who holds it (a task id, 0 for none or a plain
    /// thread). The record is read only while the fiber is parked in this
    /// wait, which borrows the mutex, so it is alive.
    Mutex { holder: *const AtomicU64 },
    /// An async task's wait for a `sync::Mutex`: the holder as it was when
    /// the task's future last looked. A pending future may be dropped, and
    /// its mutex with it, within the same poll, so an async task keeps no
    /// pointer into the mutex; nor is this an edge of the wait-for graph.
    MutexSeen { addr: usize, holder: u64 },
    /// A `sync::RwLock` (it does not track its readers, so no holder).
    RwLock { addr: usize, write: bool },
    /// A timer: `sleep`, `sleep_until`, a pause between checks.
    Sleep,
    /// A child process to exit (`fiberloop::process`).
    Child,
    /// Another task to finish.
    Join { id: u64 },
    /// A job on the loop's thread pool (`unblock`, `getaddrinfo`).
    Pool,
    /// A future driven from a fiber (`fiberloop::wait`). (An async task
    /// whose pending future is none of fiberloop's has no record at all.)
    Future,
    /// Anything else, by name (an event, a semaphore, a select, a scope).
    Other(&'static str),
}

impl WaitOn {
    /// The mutex's holder, if this is a mutex wait and a task holds it.
    pub(crate) fn lock_holder(&self) -> Option<u64> {
        let WaitOn::Mutex { holder } = *self else {
            return None;
        };
        // SAFETY: `holder` points into the mutex this fiber waits for; the
        // wait borrows the mutex for as long as the fiber is parked in it, and
        // the record is cleared right after the switch back (see `WaitCell`;
        // async tasks record `MutexSeen` instead), so the mutex is alive
        // whenever the record is read.
        let id = unsafe { &*holder }.load(std::sync::atomic::Ordering::Relaxed);
        (id != 0).then_some(id)
    }

    /// True for waits that something outside the loop's own fibers may end:
    /// I/O, timers, the pool, signals, and futures (which may be anyone's).
    pub(crate) fn is_external(&self) -> bool {
        #[cfg(feature = "hook")]
        if matches!(self, WaitOn::Poll { .. }) {
            return true;
        }
        matches!(
            self,
            WaitOn::Io { .. }
                | WaitOn::Signal
                | WaitOn::Sleep
                | WaitOn::Child
                | WaitOn::Pool
                | WaitOn::Future
        )
    }
}

/// A task's current wait, as the dump reads it: what, since when (the
/// loop's clock at its last turn, so "for how long" is exact to one turn)
/// and until when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waiting {
    pub(crate) on: WaitOn,
    pub(crate) since: Instant,
    pub(crate) until: Option<Instant>,
}

/// Where a task keeps its wait record (owner thread only): one cell per
/// field, so that a park writes a few words, not a whole struct.
///
/// A fiber writes it when it parks ([`begin`](Self::begin)) and clears it
/// right after the switch back, before anything else (unwinding included):
/// `on` may point into what the wait borrows. An async task's futures write
/// it when they return `Pending` ([`note`](Self::note)); since nothing
/// clears it when the task later awaits a future that records nothing, it
/// counts only if made in the task's latest poll (`polls`). Either way
/// `since` is when the task last stopped running.
pub(crate) struct WaitCell {
    on: Cell<Option<WaitOn>>,
    /// Set whenever `on` is.
    since: Cell<Option<Instant>>,
    until: Cell<Option<Instant>>,
    /// Polls of an async task so far, and the one that made the record.
    polls: Cell<u32>,
    noted: Cell<u32>,
}

impl WaitCell {
    pub(crate) const fn new() -> WaitCell {
        WaitCell {
            on: Cell::new(None),
            since: Cell::new(None),
            until: Cell::new(None),
            polls: Cell::new(0),
            noted: Cell::new(0),
        }
    }

    /// A fiber parks, waiting on `on`.
    #[inline(always)]
    pub(crate) fn begin(&self, on: WaitOn, since: Instant, until: Option<Instant>) {
        self.on.set(Some(on));
        self.since.set(Some(since));
        self.until.set(until);
    }

    /// The fiber's wait ended.
    #[inline(always)]
    pub(crate) fn end(&self) {
        self.on.set(None);
    }

    /// An async task is about to be polled.
    #[inline(always)]
    pub(crate) fn next_poll(&self) {
        self.polls.set(self.polls.get().wrapping_add(1));
    }

    /// One of an async task's futures is pending on `on` (as of `now`, the
    /// poll: like a fiber's, the record says since when the task last ran).
    #[inline(always)]
    pub(crate) fn note(&self, on: WaitOn, now: Instant, until: Option<Instant>) {
        self.begin(on, now, until);
        self.noted.set(self.polls.get());
    }

    /// The record, if there is one (`fiber`: whose record it is; an async
    /// task's counts only if its latest poll made it).
    pub(crate) fn get(&self, fiber: bool) -> Option<Waiting> {
        let (on, since) = (self.on.get()?, self.since.get()?);
        (fiber || self.noted.get() == self.polls.get()).then(|| Waiting {
            on,
            since,
            until: self.until.get(),
        })
    }
}

/// The id of the task running on this thread's loop (0 outside any task):
/// what a lock records as its holder.
#[inline]
pub(crate) fn current_task_id() -> u64 {
    scheduler::with_core(|core| core.with_current(|task| task.id))
        .flatten()
        .unwrap_or(0)
}

/// Records what the async task being polled waits on, when one of
/// fiberloop's futures returns `Pending`. Does nothing elsewhere (a fiber
/// records its waits when it parks).
#[inline]
pub(crate) fn note_pending(on: WaitOn) {
    note_pending_until(on, None);
}

/// [`note_pending`] for a wait with a deadline.
#[inline]
pub(crate) fn note_pending_until(on: WaitOn, until: Option<Instant>) {
    // An async task keeps no pointer into a mutex (see `WaitOn::MutexSeen`).
    debug_assert!(!matches!(on, WaitOn::Mutex { .. }));
    // In a fiber (a future driven by `fiberloop::wait`) this writes a record
    // the fiber's own park overwrites at once.
    scheduler::with_core(|core| core.note_pending(on, until));
}

/// What a loop's diagnostics do, from the environment and the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Config {
    /// Report a task that holds the loop longer than this (`FIBERLOOP_BLOCKING_MS`).
    pub(crate) blocking: Option<Duration>,
    /// Report a loop idle this long with parked tasks and nothing that
    /// could wake them (`FIBERLOOP_STALL_MS`; 0 turns it off).
    pub(crate) stall: Option<Duration>,
    /// Dump every loop to stderr on `SIGQUIT` (`FIBERLOOP_DUMP_ON_SIGQUIT=1`).
    pub(crate) dump_on_sigquit: bool,
}

/// The stall report's quiet period when the environment says nothing.
pub(crate) const DEFAULT_STALL: Duration = Duration::from_secs(10);

impl Config {
    /// The configuration the environment asks for.
    pub(crate) fn from_env() -> Config {
        let ms = |name: &str| -> Option<Option<Duration>> {
            let value = std::env::var(name).ok()?;
            match value.trim().parse::<u64>() {
                Ok(0) => Some(None),
                Ok(ms) => Some(Some(Duration::from_millis(ms))),
                Err(_) => {
                    eprintln!(
                        "fiberloop: {name}={value:?} is not a number of milliseconds; ignored"
                    );
                    None
                }
            }
        };
        Config {
            blocking: ms("FIBERLOOP_BLOCKING_MS").flatten(),
            stall: ms("FIBERLOOP_STALL_MS").unwrap_or(Some(DEFAULT_STALL)),
            dump_on_sigquit: std::env::var("FIBERLOOP_DUMP_ON_SIGQUIT")
                .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
        }
    }
}

/// A loop's diagnostics state: its configuration, the clock its waits are
/// stamped with, and what the checks found. Owned by the loop's `Core`.
pub(crate) struct Diag {
    pub(crate) config: std::cell::Cell<Config>,
    /// The loop's clock: read when the loop reads the time anyway (timers,
    /// after sleeping) and every `CLOCK_TURNS` turns otherwise.
    pub(crate) clock: std::cell::Cell<Instant>,
    /// Turns since the clock was last read.
    pub(crate) turns: std::cell::Cell<u32>,
    /// Tasks parked on a mutex right now: what makes a wait-for cycle worth
    /// looking for.
    pub(crate) lock_waits: std::cell::Cell<usize>,
    pub(crate) checks: Checks,
    /// The blocking detector's view of this loop, when it is on.
    pub(crate) watched: std::cell::OnceCell<std::sync::Arc<Watched>>,
    /// The scheduler trace's recorder, when one is being written.
    rec: std::cell::OnceCell<Box<Recorder>>,
    /// The watchdog watches, or the trace records: the loop runs its
    /// batches on the slow path.
    pub(crate) slow: std::cell::Cell<bool>,
}

/// The clock is read at least once per this many turns.
pub(crate) const CLOCK_TURNS: u32 = 16;

impl Diag {
    pub(crate) fn new() -> Diag {
        Diag {
            config: std::cell::Cell::new(Config {
                blocking: None,
                stall: None,
                dump_on_sigquit: false,
            }),
            clock: std::cell::Cell::new(Instant::now()),
            turns: std::cell::Cell::new(0),
            lock_waits: std::cell::Cell::new(0),
            checks: Checks::default(),
            watched: std::cell::OnceCell::new(),
            rec: std::cell::OnceCell::new(),
            slow: std::cell::Cell::new(false),
        }
    }

    /// The scheduler trace's recorder, if this loop writes one.
    #[inline(always)]
    pub(crate) fn recorder(&self) -> Option<&Recorder> {
        self.rec.get().map(|rec| &**rec)
    }

    /// Runs `f` in `phase` when recording (see `Recorder::in_phase`).
    #[inline(always)]
    pub(crate) fn in_phase<R>(&self, phase: Phase, f: impl FnOnce() -> R) -> R {
        match self.recorder() {
            None => f(),
            Some(rec) => rec.in_phase(phase, f),
        }
    }

    /// The loop closes: the trace, if any, is written out.
    pub(crate) fn close_trace(&self) {
        if let Some(rec) = self.recorder() {
            rec.close();
        }
    }

    /// Marks progress for the watchdog (one store when it watches, a branch
    /// when it does not).
    #[inline(always)]
    pub(crate) fn progress(&self) {
        if let Some(watched) = self.watched.get() {
            watched.progress();
        }
    }
}

impl Drop for Diag {
    fn drop(&mut self) {
        // On the loop's thread (a `Core` never leaves it).
        if let Some(watched) = self.watched.get() {
            watched.retire();
        }
    }
}

impl scheduler::Core {
    /// Applies a loop's diagnostics configuration; called once, on the loop's
    /// thread, before it first runs.
    pub(crate) fn configure(&self, config: Config) {
        self.diag.config.set(config);
        if let Some(threshold) = config.blocking {
            if self.diag.watched.get().is_none() {
                let watched = Watched::register(self.id(), self.shared().clone(), threshold);
                let _ = self.diag.watched.set(watched);
                self.diag.slow.set(true);
            }
        }
    }

    /// Starts writing the scheduler trace to `path` (`docs/tracing.md`);
    /// called once, on the loop's thread, before it first runs.
    pub(crate) fn start_trace(&self, path: &std::path::Path) -> std::io::Result<()> {
        if self.diag.rec.get().is_none() {
            let rec = Recorder::new(self.id(), path)?;
            let _ = self.diag.rec.set(Box::new(rec));
            self.diag.slow.set(true);
        }
        Ok(())
    }
}
