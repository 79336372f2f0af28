//! The scheduler trace (`FIBERLOOP_TRACE=path`, or the builder's `trace`):
//! every run of every task, why it started and why it stopped, who woke
//! whom, and the loop's own work, written as Chrome trace events (Perfetto,
//! `chrome://tracing`) or, for a path ending in `.txt`, as one line per
//! slice with logical timestamps.
//!
//! The loop records only on its slow path: the copy of the batch loop that
//! an untraced, unwatched loop never runs (one branch per batch), plus one
//! branch per wake (`Core::schedule_ref` and its siblings) to note who
//! queued the task. Everything is written by the loop's own thread into a
//! buffer, which goes to the file when the loop is about to sleep, when it
//! grows past `FLUSH_AT`, and when the loop closes.
//!
//! JSON: a process per loop (`pid` = the loop's id), a track per task
//! (`tid` = the task's id) and one for the loop itself; a complete event
//! (`X`) per run named after why it stopped, with `started` and `stopped`
//! in its args; a flow (`s` at the waker's slice, `f` at the woken task's
//! next run, both at their slices' start times) per wake; loop slices for
//! `epoll_wait` (timeout, events), `timers` (how many fired) and callbacks,
//! and an instant where a batch's budget cut it.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::trace_file::{self, TraceFile};
use super::WaitOn;
use crate::rt::task::{Output, TaskCell};

/// The buffer goes to the file once it holds this much.
const FLUSH_AT: usize = 1 << 20;

/// What the loop is doing: where a wake made now comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The loop's own code between activities (or the loop not running).
    Loop,
    /// Running task #id.
    Task(u64),
    /// Running a callback.
    Callback,
    /// Polling for I/O: a wake is a descriptor's readiness.
    Poll,
    /// Firing expired timers.
    Timers,
    /// Taking in wakes from other threads.
    Remote,
}

/// How a task came to be in the ready queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    Spawned,
    Woken,
    /// Handed in from another thread or loop.
    Adopted,
    /// Put back by its own run: a fiber's yield, a cancelled fiber that parked again.
    Again,
}

/// How a run of a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Yield,
    /// Parked (a fiber) or pending (an async task): the wait record says on what.
    Park,
    Return,
    Panic,
    Cancelled,
    /// A fiber that could not get a stack.
    NoStack,
    /// Queued, but it had finished by the time its turn came.
    Stale,
}

impl Stop {
    /// How a task that finished with `output` ended.
    pub(crate) fn of(output: &Output) -> Stop {
        match output {
            Ok(_) => Stop::Return,
            Err(e) if e.is_panic() => Stop::Panic,
            Err(e) if e.is_cancelled() => Stop::Cancelled,
            Err(_) => Stop::NoStack,
        }
    }
}

/// Why a queued task is queued, until its next run.
#[derive(Clone, Copy)]
struct Cause {
    how: Queued,
    by: Phase,
    flow: Option<u64>,
}

/// The run being recorded.
struct Run {
    task: u64,
    /// How the text form names it: `#id name`.
    label: String,
    fiber: bool,
    start: u64,
    started: String,
    flow_in: Option<u64>,
}

/// One loop's recorder (owner thread only).
pub(crate) struct Recorder {
    loop_id: u64,
    text: bool,
    file: Arc<TraceFile>,
    buf: RefCell<String>,
    phase: Cell<Phase>,
    /// The slice open now (its track and start), which a wake's flow starts from.
    open: Cell<Option<(u64, u64)>>,
    /// Flow starts made during the open slice, written after it.
    flows_out: RefCell<String>,
    causes: RefCell<HashMap<u64, Cause>>,
    named: RefCell<HashSet<u64>>,
    run: RefCell<Option<Run>>,
    /// How the run being recorded ended, as the scheduler says.
    stop: Cell<Stop>,
    /// Logical time: slices so far (the text form's timestamps).
    seq: Cell<u64>,
    next_flow: Cell<u64>,
    closed: Cell<bool>,
}

/// The process's trace clock: timestamps are microseconds since this.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    origin().elapsed().as_nanos() as u64
}

/// A timestamp in the format's microseconds, to the nanosecond.
struct Us(u64);

impl std::fmt::Display for Us {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// A JSON string's contents.
struct Esc<'a>(&'a str);

impl std::fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

impl Recorder {
    /// A recorder for loop `loop_id` writing to `path`.
    pub(crate) fn new(loop_id: u64, path: &Path) -> std::io::Result<Recorder> {
        let file = TraceFile::open(path)?;
        let rec = Recorder {
            loop_id,
            text: trace_file::is_text(path),
            file,
            buf: RefCell::new(String::new()),
            phase: Cell::new(Phase::Loop),
            open: Cell::new(None),
            flows_out: RefCell::new(String::new()),
            causes: RefCell::new(HashMap::new()),
            named: RefCell::new(HashSet::new()),
            run: RefCell::new(None),
            stop: Cell::new(Stop::Stale),
            seq: Cell::new(0),
            next_flow: Cell::new(0),
            closed: Cell::new(false),
        };
        if !rec.text {
            let (pid, tid) = (loop_id, rec.loop_tid());
            let thread = std::thread::current();
            let thread = thread.name().unwrap_or("unnamed thread");
            let mut buf = rec.buf.borrow_mut();
            let _ = write!(
                buf,
                ",\n{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":\"fiberloop loop {pid} ({})\"}}}}\
                 ,\n{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":\"loop\"}}}}\
                 ,\n{{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"sort_index\":-1}}}}",
                Esc(thread)
            );
        }
        Ok(rec)
    }

    /// The loop's own track: counted down from the top of the id range, so
    /// it never meets a task's (counted up from 1).
    fn loop_tid(&self) -> u64 {
        u64::from(u32::MAX) - self.loop_id
    }

    /// Runs `f` with the loop in `phase` (wakes made in it are attributed to it).
    pub(crate) fn in_phase<R>(&self, phase: Phase, f: impl FnOnce() -> R) -> R {
        let before = self.phase.replace(phase);
        let result = f();
        self.phase.set(before);
        result
    }

    /// Task `id` was queued (`how`): remembers by whom, for its next run.
    #[cold]
    #[inline(never)]
    pub(crate) fn queued(&self, id: u64, how: Queued) {
        let by = self.phase.get();
        let flow = self.open.get().map(|(tid, start)| {
            let flow = (self.loop_id << 40) | self.next_flow.replace(self.next_flow.get() + 1);
            if !self.text {
                let _ = write!(
                    self.flows_out.borrow_mut(),
                    ",\n{{\"ph\":\"s\",\"cat\":\"wake\",\"name\":\"wake\",\"id\":{flow},\"pid\":{},\"tid\":{tid},\"ts\":{}}}",
                    self.loop_id,
                    Us(start)
                );
            }
            flow
        });
        self.causes
            .borrow_mut()
            .entry(id)
            .or_insert(Cause { how, by, flow });
    }

    /// A run of `task` begins; `wait` is what it waited on, if anything.
    pub(crate) fn begin_task(&self, task: &TaskCell, fiber: bool, wait: Option<WaitOn>) {
        let id = task.id;
        self.name_track(task, fiber);
        let cause = self.causes.borrow_mut().remove(&id);
        let started = match cause {
            None => "resumed".to_string(),
            Some(cause) => started(id, cause, wait),
        };
        let label = match task.name.as_deref() {
            Some(name) => format!("#{id} {name}"),
            None => format!("#{id}"),
        };
        let start = now_ns();
        self.open.set(Some((id, start)));
        self.phase.set(Phase::Task(id));
        *self.run.borrow_mut() = Some(Run {
            task: id,
            label,
            fiber,
            start,
            started,
            flow_in: cause.and_then(|c| c.flow),
        });
    }

    /// How the run being recorded ends (the scheduler says so just before).
    pub(crate) fn stopped(&self, stop: Stop) {
        self.stop.set(stop);
    }

    /// The run begun last ended; `wait` is the task's wait record now,
    /// `requeued` whether it is in the ready queue again.
    pub(crate) fn end_task(&self, wait: Option<WaitOn>, requeued: bool) {
        let end = now_ns();
        let stop = self.stop.replace(Stop::Stale);
        let Some(run) = self.run.borrow_mut().take() else {
            return;
        };
        let stopped = match stop {
            Stop::Yield => "yield".to_string(),
            Stop::Park => match wait {
                Some(on) => describe(on),
                None if run.fiber => "park".to_string(),
                None => "pending".to_string(),
            },
            Stop::Return => "return".to_string(),
            Stop::Panic => "panic".to_string(),
            Stop::Cancelled => "cancelled".to_string(),
            Stop::NoStack => "no stack".to_string(),
            Stop::Stale => "nothing (it had finished)".to_string(),
        };
        if requeued && !self.causes.borrow().contains_key(&run.task) {
            let again = Cause {
                how: Queued::Again,
                by: Phase::Task(run.task),
                flow: None,
            };
            self.causes.borrow_mut().insert(run.task, again);
        }
        let (tid, who) = (run.task, &run.label);
        self.slice(tid, who, run.start, end, &run.started, &stopped, &stopped);
        if let Some(flow) = run.flow_in {
            if !self.text {
                let _ = write!(
                    self.buf.borrow_mut(),
                    ",\n{{\"ph\":\"f\",\"bp\":\"e\",\"cat\":\"wake\",\"name\":\"wake\",\"id\":{flow},\"pid\":{},\"tid\":{},\"ts\":{}}}",
                    self.loop_id,
                    run.task,
                    Us(run.start)
                );
            }
        }
        self.close_slice();
    }

    /// A loop activity begins (a callback, a poll, the timers): returns its start.
    pub(crate) fn begin_loop(&self) -> u64 {
        let start = now_ns();
        self.open.set(Some((self.loop_tid(), start)));
        start
    }

    /// A callback that began at `start` returned (or panicked).
    pub(crate) fn end_callback(&self, start: u64) {
        let tid = self.loop_tid();
        self.slice(
            tid,
            "loop",
            start,
            now_ns(),
            "callback",
            "return",
            "callback",
        );
        self.close_slice();
    }

    /// A poll that began at `start`, with `timeout`, returned `events`.
    pub(crate) fn end_poll(&self, start: u64, timeout: Option<Duration>, events: usize) {
        let end = now_ns();
        // As strace shows the call: its timeout argument (in the text form,
        // only whether there is one, which does not vary from run to run).
        let started = match timeout {
            Some(Duration::ZERO) => "epoll_wait(0)".to_string(),
            Some(_) if self.text => "epoll_wait(timeout)".to_string(),
            Some(t) => format!("epoll_wait({:.3} ms)", t.as_secs_f64() * 1e3),
            None => "epoll_wait(-1)".to_string(),
        };
        let plural = if events == 1 { "" } else { "s" };
        let stopped = format!("{events} event{plural}");
        let tid = self.loop_tid();
        self.slice(tid, "loop", start, end, &started, &stopped, "epoll_wait");
        self.close_slice();
    }

    /// Firing the timers that began at `start` fired `fired` (none: no slice).
    pub(crate) fn end_timers(&self, start: u64, fired: usize) {
        if fired > 0 {
            let stopped = format!("{fired} fired");
            let tid = self.loop_tid();
            self.slice(tid, "loop", start, now_ns(), "timers", &stopped, "timers");
        }
        self.close_slice();
    }

    /// A batch used its whole budget with `ready` items still waiting.
    pub(crate) fn budget_cut(&self, ready: usize) {
        let seq = self.seq.replace(self.seq.get() + 1) + 1;
        let mut buf = self.buf.borrow_mut();
        let _ = if self.text {
            writeln!(
                buf,
                "{seq:>5}  {:<12} {:<24} → {ready} ready",
                "loop", "budget cut"
            )
        } else {
            write!(
                buf,
                ",\n{{\"ph\":\"i\",\"s\":\"t\",\"name\":\"budget cut\",\"pid\":{},\"tid\":{},\"ts\":{},\"args\":{{\"ready\":{ready}}}}}",
                self.loop_id,
                self.loop_tid(),
                Us(now_ns())
            )
        };
    }

    /// Writes what is buffered to the file: when the loop is about to sleep,
    /// and when the buffer is large.
    pub(crate) fn flush(&self) {
        let mut buf = self.buf.borrow_mut();
        if !self.closed.get() {
            self.file.append(self.loop_id, &buf);
        }
        buf.clear();
    }

    /// The loop closes: the rest goes to the file, which this loop lets go.
    pub(crate) fn close(&self) {
        if !self.closed.get() {
            self.flush();
            self.closed.set(true);
            self.file.close();
        }
    }

    /// One slice on track `tid` (`who` in the text form), from `start` to
    /// `end`; `name` is what the viewer shows on it.
    #[allow(clippy::too_many_arguments)]
    fn slice(
        &self,
        tid: u64,
        who: &str,
        start: u64,
        end: u64,
        started: &str,
        stopped: &str,
        name: &str,
    ) {
        let seq = self.seq.replace(self.seq.get() + 1) + 1;
        let mut buf = self.buf.borrow_mut();
        let _ = if self.text {
            writeln!(buf, "{seq:>5}  {who:<12} {started:<24} → {stopped}")
        } else {
            write!(
                buf,
                ",\n{{\"ph\":\"X\",\"cat\":\"run\",\"name\":\"{}\",\"pid\":{},\"tid\":{tid},\"ts\":{},\"dur\":{},\"args\":{{\"started\":\"{}\",\"stopped\":\"{}\"}}}}",
                Esc(name),
                self.loop_id,
                Us(start),
                Us(end.saturating_sub(start)),
                Esc(started),
                Esc(stopped)
            )
        };
        let big = buf.len() >= FLUSH_AT;
        drop(buf);
        if big {
            self.flush();
        }
    }

    /// The open slice ended: the flows that start in it follow it.
    fn close_slice(&self) {
        self.open.set(None);
        self.phase.set(Phase::Loop);
        let mut out = self.flows_out.borrow_mut();
        self.buf.borrow_mut().push_str(&out);
        out.clear();
    }

    /// Names task `task`'s track the first time it runs.
    fn name_track(&self, task: &TaskCell, fiber: bool) {
        if !self.named.borrow_mut().insert(task.id) || self.text {
            return;
        }
        let kind = if fiber { "fiber" } else { "async" };
        let (pid, tid) = (self.loop_id, task.id);
        let label = match task.name.as_deref() {
            Some(name) => format!("#{tid} {name} ({kind})"),
            None => format!("#{tid} ({kind})"),
        };
        let _ = write!(
            self.buf.borrow_mut(),
            ",\n{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":\"{}\"}}}}\
             ,\n{{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"sort_index\":{tid}}}}}",
            Esc(&label)
        );
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.close();
    }
}

/// Why a run of task `id` started, from how it was queued and what it
/// waited on.
fn started(id: u64, cause: Cause, wait: Option<WaitOn>) -> String {
    match (cause.how, cause.by) {
        (Queued::Adopted, _) => "handed in".to_string(),
        (Queued::Spawned, Phase::Task(by)) => format!("spawned by #{by}"),
        (Queued::Spawned, _) => "spawned".to_string(),
        (Queued::Again, _) if wait.is_some() => "again, to unwind".to_string(),
        (Queued::Again, _) => "after yield".to_string(),
        (Queued::Woken, Phase::Task(by)) if by == id => "after yield".to_string(),
        (Queued::Woken, Phase::Task(by)) => format!("woken by #{by}"),
        (Queued::Woken, Phase::Callback) => "woken by a callback".to_string(),
        (Queued::Woken, Phase::Poll) => match wait {
            Some(WaitOn::Io { fd, write: false }) => format!("fd {fd} readable"),
            Some(WaitOn::Io { fd, write: true }) => format!("fd {fd} writable"),
            Some(WaitOn::Signal) => "signal".to_string(),
            Some(WaitOn::Child) => "child exited".to_string(),
            _ => "I/O ready".to_string(),
        },
        (Queued::Woken, Phase::Timers) => match wait {
            Some(WaitOn::Sleep) => "timer due".to_string(),
            _ => "timeout".to_string(),
        },
        (Queued::Woken, Phase::Remote) => "woken from another thread".to_string(),
        (Queued::Woken, Phase::Loop) => "woken by the loop".to_string(),
    }
}

/// A wait, as a trace names why a run stopped.
fn describe(on: WaitOn) -> String {
    match on {
        // The direction, not the call: an `accept` waits for readable too.
        WaitOn::Io { fd, write: false } => format!("WouldBlock: wait for fd {fd} readable"),
        WaitOn::Io { fd, write: true } => format!("WouldBlock: wait for fd {fd} writable"),
        #[cfg(feature = "hook")]
        WaitOn::Poll { fds } => format!("poll {fds} fds"),
        WaitOn::Signal => "wait for a signal".to_string(),
        WaitOn::Recv { .. } => "recv: channel empty".to_string(),
        WaitOn::Send { .. } => "send: channel full".to_string(),
        WaitOn::Mutex { .. } => match on.lock_holder() {
            Some(holder) => format!("lock: held by #{holder}"),
            None => "lock".to_string(),
        },
        WaitOn::MutexSeen { holder: 0, .. } => "lock".to_string(),
        WaitOn::MutexSeen { holder, .. } => format!("lock: held by #{holder}"),
        WaitOn::RwLock { write: false, .. } => "read lock".to_string(),
        WaitOn::RwLock { write: true, .. } => "write lock".to_string(),
        WaitOn::Sleep => "sleep".to_string(),
        WaitOn::Child => "wait for a child".to_string(),
        WaitOn::Join { id } => format!("join #{id}"),
        WaitOn::Pool => "pool job".to_string(),
        WaitOn::Future => "future".to_string(),
        WaitOn::Other(what) => what.to_string(),
    }
}
