//! The blocking detector: one watchdog thread per process watches every
//! loop that asked for it (`FIBERLOOP_BLOCKING_MS`, or the builder).
//!
//! A loop bumps its progress counter each time it starts an item or a turn
//! ([`Watched::progress`], one relaxed store; the loop runs a copy of its
//! inner loop without the store when no watchdog watches it). Every quarter of the smallest
//! threshold the watchdog looks at each loop: one that is inside `run`, not
//! asleep in `poll`, and whose counter has not moved for longer than its
//! threshold is held by a single fiber, task or callback. The watchdog then
//! samples the loop thread where it is (`sys::sample`: the program counter
//! and the call sites on its stack, taken by a signal handler), symbolizes
//! that afterwards on its own thread, and prints the report; when the
//! counter moves again it prints how long the hold lasted. This is gevent's
//! `max_blocking_time` monitor, with the blocked code's location, which a
//! report written at the next yield could not give.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::rt::scheduler;
use crate::sys::sample::{self, Sample};

/// A loop as the watchdog sees it. Made on the loop's thread; the loop
/// holds it in its `Core`, the watchdog a `Weak`.
pub(crate) struct Watched {
    progress: AtomicU64,
    /// Nested `run` calls in progress (0: the loop is not being driven, so
    /// the thread doing something else is none of our business).
    running: AtomicUsize,
    shared: Arc<crate::rt::scheduler::Shared>,
    threshold: Duration,
    loop_id: u64,
    thread_name: String,
    /// True while the loop's thread is alive and its sample published; the
    /// watchdog holds this lock while it signals the thread.
    alive: Mutex<bool>,
    sample: Sample,
    /// Why frames cannot be taken, if they cannot.
    no_frames: Option<String>,
}

impl Watched {
    /// Starts watching the calling thread's loop.
    pub(crate) fn register(
        loop_id: u64,
        shared: Arc<crate::rt::scheduler::Shared>,
        threshold: Duration,
    ) -> Arc<Watched> {
        let thread = std::thread::current();
        let mut watched = Arc::new(Watched {
            progress: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            shared,
            threshold,
            loop_id,
            thread_name: thread.name().unwrap_or("unnamed").to_string(),
            alive: Mutex::new(true),
            sample: Sample::for_this_thread(),
            no_frames: None,
        });
        let no_frames = sample::watch_this_thread(&watched.sample, probe).err();
        if let Some(why) = &no_frames {
            eprintln!("fiberloop: blocking detector: {why}");
        }
        Arc::get_mut(&mut watched)
            .expect("not shared yet")
            .no_frames = no_frames;
        let dog = watchdog();
        dog.loops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&watched));
        dog.added.notify_one();
        watched
    }

    /// One more item or turn began.
    #[inline(always)]
    pub(crate) fn progress(&self) {
        let next = self.progress.load(Ordering::Relaxed).wrapping_add(1);
        self.progress.store(next, Ordering::Relaxed);
    }

    /// The loop is being driven until the guard drops.
    pub(crate) fn running(&self) -> impl Drop + '_ {
        struct Running<'a>(&'a AtomicUsize);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.running.fetch_add(1, Ordering::Relaxed);
        Running(&self.running)
    }

    /// The loop is going away (on its own thread): no more signals to it.
    pub(crate) fn retire(&self) {
        *self.alive.lock().unwrap_or_else(|e| e.into_inner()) = false;
        sample::unwatch_this_thread();
    }
}

/// The probe the signal handler calls on the loop thread: who is running.
/// Only reads (see `sys::sample`).
fn probe(sample: &Sample) {
    scheduler::with_core(|core| {
        core.with_current(|task| {
            let fiber = crate::rt::coro::in_fiber();
            sample.set_task(task.id, fiber, task.name.as_deref(), task.location);
        })
    });
}

struct Watchdog {
    loops: Mutex<Vec<Weak<Watched>>>,
    added: Condvar,
}

/// What the watchdog remembers of one loop between looks.
struct Look {
    watched: Weak<Watched>,
    progress: u64,
    since: Instant,
    reported: bool,
}

fn watchdog() -> &'static Watchdog {
    static DOG: OnceLock<&'static Watchdog> = OnceLock::new();
    DOG.get_or_init(|| {
        let dog: &'static Watchdog = Box::leak(Box::new(Watchdog {
            loops: Mutex::new(Vec::new()),
            added: Condvar::new(),
        }));
        static STARTED: AtomicBool = AtomicBool::new(false);
        if !STARTED.swap(true, Ordering::Relaxed) {
            let spawned = std::thread::Builder::new()
                .name("fiberloop-watchdog".into())
                .spawn(move || watch(dog));
            if let Err(e) = spawned {
                eprintln!("fiberloop: blocking detector: cannot start its thread: {e}");
            }
        }
        dog
    })
}

fn watch(dog: &'static Watchdog) {
    // Load the symbol tables now, not during the first report: for a large
    // binary with debug info that takes long enough for a short hold to be
    // over (or the process gone) before the report is written. On a thread of
    // its own, so that the watching starts at once: a report that comes
    // while the tables load is sampled on time and printed once they are in.
    let _ = std::thread::Builder::new()
        .name("fiberloop-symbols".into())
        .spawn(|| symbolize(watch as *const () as usize));
    let mut looks: Vec<Look> = Vec::new();
    loop {
        let tick = {
            let mut loops = dog.loops.lock().unwrap_or_else(|e| e.into_inner());
            while loops.is_empty() && looks.is_empty() {
                loops = dog.added.wait(loops).unwrap_or_else(|e| e.into_inner());
            }
            for watched in loops.drain(..) {
                looks.push(Look {
                    watched,
                    progress: u64::MAX,
                    since: Instant::now(),
                    reported: false,
                });
            }
            looks
                .iter()
                .filter_map(|look| look.watched.upgrade())
                .map(|w| w.threshold / 4)
                .min()
                .unwrap_or(Duration::from_millis(100))
                .clamp(Duration::from_millis(1), Duration::from_millis(250))
        };
        std::thread::sleep(tick);
        looks.retain_mut(|look| {
            let Some(watched) = look.watched.upgrade() else {
                return false;
            };
            look_at(look, &watched);
            true
        });
    }
}

fn look_at(look: &mut Look, watched: &Watched) {
    let now = Instant::now();
    let progress = watched.progress.load(Ordering::Relaxed);
    let busy = watched.running.load(Ordering::Relaxed) > 0 && !watched.shared.is_sleeping();
    if progress != look.progress || !busy {
        if look.reported {
            eprintln!(
                "fiberloop: blocking: loop {} (thread '{}') is running again after {} ms",
                watched.loop_id,
                watched.thread_name,
                now.duration_since(look.since).as_millis()
            );
        }
        look.progress = progress;
        look.since = now;
        look.reported = false;
        return;
    }
    let held = now.duration_since(look.since);
    if look.reported || held < watched.threshold {
        return;
    }
    look.reported = true;
    let taken = {
        let alive = watched.alive.lock().unwrap_or_else(|e| e.into_inner());
        if !*alive {
            return;
        }
        watched.sample.take(Duration::from_millis(200))
    };
    eprintln!("{}", report(watched, held, taken.as_ref()));
}

/// The report of a loop held for `held`, with what the sample found.
fn report(watched: &Watched, held: Duration, taken: Option<&sample::Taken>) -> String {
    let who = match taken.and_then(|t| t.task.as_ref()) {
        Some(task) => {
            let kind = if task.fiber { "fiber" } else { "async task" };
            let name = task
                .name
                .as_ref()
                .map(|n| format!(" '{n}'"))
                .unwrap_or_default();
            format!("{kind} #{}{name} (spawned at {})", task.id, task.location)
        }
        None if taken.is_some() => "a loop callback or the loop's own code".to_string(),
        None => "a task".to_string(),
    };
    let mut out = format!(
        "fiberloop: blocking: {who} has held loop {} (thread '{}') for {} ms without giving it back \
         (threshold {} ms); no other task on that loop runs meanwhile.",
        watched.loop_id,
        watched.thread_name,
        held.as_millis(),
        watched.threshold.as_millis()
    );
    match taken {
        Some(taken) => {
            out.push_str(
                "\n  where it is now (the interrupted instruction, then call sites found on its stack):",
            );
            for (i, &address) in taken.frames.iter().enumerate() {
                // A return address names the instruction after the call.
                let lookup = if i == 0 {
                    address
                } else {
                    address.saturating_sub(1)
                };
                out.push_str(&format!("\n    {}", symbolize(lookup)));
            }
        }
        None => match &watched.no_frames {
            Some(why) => out.push_str(&format!("\n  (no frames: {why})")),
            None => out.push_str("\n  (no frames: the loop thread did not answer the sample)"),
        },
    }
    out
}

/// "function (file:line)" for a code address, or the address.
fn symbolize(address: usize) -> String {
    let mut found = None;
    backtrace::resolve(address as *mut std::ffi::c_void, |symbol| {
        if found.is_some() {
            return; // the innermost inlined frame names the code best
        }
        let name = symbol
            .name()
            .map_or_else(|| format!("{address:#x}"), |n| format!("{n:#}"));
        found = Some(match (symbol.filename(), symbol.lineno()) {
            (Some(file), Some(line)) => format!("{name} ({}:{line})", file.display()),
            _ => name,
        });
    });
    found.unwrap_or_else(|| format!("{address:#x}"))
}
