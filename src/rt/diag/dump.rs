//! The fiber dump: a loop's tasks as text, each with its state, what it
//! waits on and for how long, where it was spawned and, for a fiber, the
//! backtrace of where it is (taken on its own stack: see `Coro::capture`).
//!
//! ```text
//! fiberloop: loop 1 (thread 'main'): 3 tasks (1 running, 0 ready, 2 parked, 0 not started), 1 timer, 2 I/O sources
//! fiber #1 'main': running
//!     spawned at src/main.rs:4:5
//!         main::main::{{closure}} (src/main.rs:9:20)
//! fiber #3: parked for 1.20 s on mutex 0x55d0c0a0 held by fiber #4
//!     ...
//! ```

use std::fmt::Write as _;
use std::time::Instant;

use super::WaitOn;
use crate::rt::scheduler::{Core, TaskState, TaskView};

/// At most this many frames of a backtrace are printed.
const MAX_FRAMES: usize = 24;

impl Core {
    /// This loop as text; with `backtraces`, each fiber's stack too.
    pub(crate) fn dump(&self, backtraces: bool) -> String {
        let views = self.task_views();
        let count = |state| views.iter().filter(|v| v.state == state).count();
        let (timers, sources) = self.counts();
        let thread = std::thread::current();
        let mut out = String::new();
        let _ = write!(
            out,
            "fiberloop: loop {} (thread '{}'{}): {} ({} running, {} ready, {} parked, {} not started), {}, {}",
            self.id(),
            thread.name().unwrap_or("unnamed"),
            self.group_index()
                .map(|i| format!(", runtime loop {i}"))
                .unwrap_or_default(),
            plural(views.len(), "task"),
            count(TaskState::Running),
            count(TaskState::Ready),
            count(TaskState::Parked),
            count(TaskState::NotStarted),
            plural(timers, "timer"),
            plural(sources, "I/O source"),
        );
        let now = Instant::now();
        for view in &views {
            let _ = write!(out, "\n{}: ", title(view));
            match (view.state, view.wait) {
                (TaskState::Parked, Some(wait)) => {
                    let _ = write!(
                        out,
                        "parked for {} on {}",
                        seconds(now.saturating_duration_since(wait.since)),
                        describe(self, &views, &wait.on)
                    );
                    if let Some(until) = wait.until {
                        let _ = write!(
                            out,
                            " (deadline in {})",
                            seconds(until.saturating_duration_since(now))
                        );
                    }
                }
                (TaskState::Parked, None) if view.fiber => out.push_str("parked"),
                (TaskState::Parked, None) => {
                    out.push_str("parked on a future (none of fiberloop's)")
                }
                (TaskState::Running, _) => out.push_str("running"),
                (TaskState::Ready, _) => out.push_str("ready"),
                (TaskState::NotStarted, _) => out.push_str("ready, not started"),
            }
            let _ = write!(out, "\n    spawned at {}", view.task.location);
            if !backtraces {
                continue;
            }
            if !view.fiber {
                out.push_str("\n    (an async task: no stack of its own; it is where its future last returned Pending)");
                continue;
            }
            if view.state == TaskState::NotStarted {
                continue;
            }
            if let Some(backtrace) = self.backtrace_of(&view.task) {
                for frame in frames(&backtrace) {
                    let _ = write!(out, "\n        {frame}");
                }
            }
        }
        out.push('\n');
        out
    }
}

/// "fiber #3 'name'" or "task #4".
pub(super) fn title(view: &TaskView) -> String {
    let kind = if view.fiber { "fiber" } else { "task" };
    match &view.task.name {
        Some(name) => format!("{kind} #{} '{name}'", view.task.id),
        None => format!("{kind} #{}", view.task.id),
    }
}

/// What a wait is for, in words.
pub(super) fn describe(core: &Core, views: &[TaskView], on: &WaitOn) -> String {
    let task = |id: u64| match views.iter().find(|v| v.task.id == id) {
        Some(view) => title(view),
        None => format!("task #{id} (not on this loop)"),
    };
    match *on {
        WaitOn::Io { fd, write } => format!(
            "{} fd {fd} ({})",
            if write { "write to" } else { "read from" },
            crate::sys::describe_fd(fd)
        ),
        #[cfg(feature = "hook")]
        WaitOn::Poll { fds } => format!("poll(2) on {fds} descriptors"),
        WaitOn::Signal => "a signal".to_string(),
        WaitOn::Recv { channel } => format!("recv from channel {channel:#x}"),
        WaitOn::Send { channel } => format!("send to channel {channel:#x} (full)"),
        WaitOn::Mutex { holder } => match on.lock_holder() {
            Some(id) => format!("mutex {:#x} held by {}", holder.addr(), task(id)),
            None => format!(
                "mutex {:#x} (held outside this loop's tasks)",
                holder.addr()
            ),
        },
        WaitOn::MutexSeen { addr, holder: 0 } => {
            format!("mutex {addr:#x} (held outside this loop's tasks when last seen)")
        }
        WaitOn::MutexSeen { addr, holder } => {
            format!("mutex {addr:#x} held by {} when last seen", task(holder))
        }
        WaitOn::RwLock { addr, write } => {
            let to = if write { "write" } else { "read" };
            format!("rwlock {addr:#x} (to {to})")
        }
        WaitOn::Sleep => "sleep".to_string(),
        WaitOn::Child => "a child process to exit".to_string(),
        WaitOn::Join { id } => format!("join of {}", task(id)),
        WaitOn::Pool => format!(
            "a job on the loop's thread pool ({} threads)",
            core.blocking.threads()
        ),
        WaitOn::Future => "a future".to_string(),
        WaitOn::Other(what) => what.to_string(),
    }
}

/// "1 timer", "2 timers".
pub(super) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn seconds(d: std::time::Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The frames of a fiber's backtrace worth reading: from the first frame
/// outside fiberloop's core (the capture and the wait itself are left out)
/// down to the fiber's root, as "function (file:line:col)".
fn frames(backtrace: &std::backtrace::Backtrace) -> Vec<String> {
    let text = backtrace.to_string();
    let mut frames: Vec<(String, Option<String>)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(at) = trimmed.strip_prefix("at ") {
            if let Some(last) = frames.last_mut() {
                last.1.get_or_insert_with(|| at.to_string());
            }
        } else if let Some((number, symbol)) = trimmed.split_once(": ") {
            if number.chars().all(|c| c.is_ascii_digit()) {
                frames.push((symbol.to_string(), None));
            }
        }
    }
    let root = |symbol: &str| symbol.contains("corosensei") || symbol == "stack_init_trampoline";
    let internal = |symbol: &str| {
        symbol.starts_with("std::backtrace")
            || symbol.starts_with("fiberloop::rt::")
            || symbol.starts_with("fiberloop::runtime::")
            || symbol.starts_with("fiberloop::remote::")
            || root(symbol)
    };
    let library = |symbol: &str| {
        [
            "core::", "std::", "alloc::", "<core::", "<std::", "<alloc::",
        ]
        .iter()
        .any(|prefix| symbol.starts_with(prefix))
    };
    // The fiber's own frames end at its root; above them are the capture
    // and the wait (internal, with std frames among them). Where inlining
    // left no frame of the user's own, the std frame it was inlined into
    // (a closure's `call_once`) is what remains to show.
    let root_at = frames
        .iter()
        .position(|(symbol, _)| root(symbol))
        .unwrap_or(frames.len());
    let own = &frames[..root_at];
    let first = own
        .iter()
        .position(|(symbol, _)| !internal(symbol) && !library(symbol))
        .or_else(|| own.iter().position(|(symbol, _)| !internal(symbol)))
        .unwrap_or(own.len());
    own[first..]
        .iter()
        .take_while(|(symbol, _)| !internal(symbol))
        .take(MAX_FRAMES)
        .map(|(symbol, at)| match at {
            Some(at) => format!("{symbol} ({at})"),
            None => symbol.clone(),
        })
        .collect()
}
