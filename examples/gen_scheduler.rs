//! An operating system made of generators, after David Beazley's "pyos"
//! ("A Curious Course on Coroutines and Concurrency"): tasks are generators,
//! and what they *yield* are system calls for a small round-robin scheduler.
//! It is what fiberloop's real scheduler does, from scratch, in ~250 lines
//! (a fifth of them print the trace).
//!
//! Step 5 of docs/learn.md: after `gen_delegation`, before `fiber_scheduler`.
//!
//! Run: `cargo run --example gen_scheduler` (add `-- --trace` to print each
//! run of a task, why it started and why it stopped, in the text form of
//! fiberloop's scheduler trace: docs/tracing.md).
//!
//! System calls: `GetTid`, `Spawn` (a new task), `Wait` (for a task to exit),
//! `Sleep` (timers), `ReadWait` (an fd becomes readable, found with `poll(2)`),
//! and a plain `Yield`. Expected output, in this order:
//!
//! ```text
//! [task 1] main: spawning a child, a reader and a writer
//! [task 2] child: step 1
//! [task 3] reader: waiting for data
//! [task 4] writer: sleeping 30 ms, then writing
//! [task 2] child: step 2
//! [task 2] child: step 3
//! [task 3] reader: got "hello from task 4"
//! [task 1] main: child and reader exited, all done
//! ```

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use fiberloop::generator::{Generator, GeneratorState, Yielder};

type Tid = u32;
/// A task: a generator that receives syscall results and yields syscalls.
type Task = Generator<Reply, SysCall, ()>;
type Sys<'a> = Yielder<'a, Reply, SysCall>;

enum SysCall {
    GetTid,
    Spawn(Task),
    Wait(Tid),
    Sleep(Duration),
    ReadWait(RawFd),
    Yield,
}

/// What a system call returns to the task.
#[derive(Clone, Copy, Debug)]
enum Reply {
    None,
    Tid(Tid),
}

fn task(body: impl FnOnce(&Sys<'_>) + 'static) -> Task {
    Generator::new(move |y, _start| body(y))
}

fn my_tid(y: &Sys<'_>) -> Tid {
    match y.suspend(SysCall::GetTid) {
        Reply::Tid(tid) => tid,
        Reply::None => unreachable!("GetTid answers with a tid"),
    }
}

#[derive(Default)]
struct Scheduler {
    tasks: HashMap<Tid, Task>,
    /// Ready tasks, with what they get back and why they are ready.
    ready: VecDeque<(Tid, Reply, String)>,
    sleeping: Vec<(Instant, Tid)>,
    reading: HashMap<RawFd, Tid>,
    exit_waiters: HashMap<Tid, Vec<Tid>>,
    next_tid: Tid,
    /// Print the trace (`--trace`), numbering its lines.
    trace: bool,
    seq: u32,
}

impl Scheduler {
    fn spawn(&mut self, task: Task, why: String) -> Tid {
        self.next_tid += 1;
        self.tasks.insert(self.next_tid, task);
        self.ready.push_back((self.next_tid, Reply::None, why));
        self.next_tid
    }

    /// One line of the trace: who ran, why it started, why it stopped.
    fn trace(&mut self, who: &str, started: &str, stopped: &str) {
        if self.trace {
            self.seq += 1;
            println!("{:>5}  {who:<12} {started:<24} → {stopped}", self.seq);
        }
    }

    /// Waits for the earliest timer or a readable fd, like a real event loop.
    fn wait_for_events(&mut self) {
        let now = Instant::now();
        let timeout = self
            .sleeping
            .iter()
            .map(|(when, _)| when.saturating_duration_since(now))
            .min();
        let mut fds: Vec<libc::pollfd> = self
            .reading
            .keys()
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = timeout.map_or(-1, |t| t.as_millis() as i32 + 1);
        // SAFETY: `fds` is a live, correctly sized array of pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        let call = if ms < 0 { "poll(-1)" } else { "poll(timeout)" };
        let plural = if n == 1 { "" } else { "s" };
        self.trace("loop", call, &format!("{} event{plural}", n.max(0)));
        for pfd in fds.iter().filter(|p| p.revents != 0) {
            let tid = self.reading.remove(&pfd.fd).expect("registered");
            let why = format!("fd {} readable", pfd.fd);
            self.ready.push_back((tid, Reply::None, why));
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, _) = self.sleeping.drain(..).partition(|(when, _)| *when <= now);
        self.sleeping = later;
        if !due.is_empty() {
            self.trace("loop", "timers", &format!("{} fired", due.len()));
        }
        for (_, tid) in due {
            self.ready.push_back((tid, Reply::None, "timer due".into()));
        }
    }

    fn run(&mut self) {
        while !self.tasks.is_empty() {
            let Some((tid, reply, why)) = self.ready.pop_front() else {
                self.wait_for_events();
                continue;
            };
            let task = self.tasks.get_mut(&tid).expect("ready tasks exist");
            let who = format!("#{tid}");
            match task.resume(reply) {
                Ok(GeneratorState::Yielded(call)) => {
                    self.trace(&who, &why, &call.to_string());
                    self.syscall(tid, call);
                }
                Ok(GeneratorState::Complete(())) | Err(_) => {
                    self.trace(&who, &why, "return");
                    self.tasks.remove(&tid);
                    for waiter in self.exit_waiters.remove(&tid).unwrap_or_default() {
                        let why = format!("woken by #{tid}");
                        self.ready.push_back((waiter, Reply::None, why));
                    }
                }
            }
        }
    }

    fn syscall(&mut self, tid: Tid, call: SysCall) {
        let answered = "syscall answered".to_string();
        match call {
            SysCall::GetTid => self.ready.push_back((tid, Reply::Tid(tid), answered)),
            SysCall::Spawn(child) => {
                let child = self.spawn(child, format!("spawned by #{tid}"));
                self.ready.push_back((tid, Reply::Tid(child), answered));
            }
            SysCall::Wait(other) if self.tasks.contains_key(&other) => {
                self.exit_waiters.entry(other).or_default().push(tid);
            }
            SysCall::Wait(_) => self.ready.push_back((tid, Reply::None, answered)),
            SysCall::Yield => self
                .ready
                .push_back((tid, Reply::None, "after yield".into())),
            SysCall::Sleep(d) => self.sleeping.push((Instant::now() + d, tid)),
            SysCall::ReadWait(fd) => {
                self.reading.insert(fd, tid);
            }
        }
    }
}

/// A system call as the trace names it (fiberloop's words where they exist).
impl std::fmt::Display for SysCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SysCall::GetTid => write!(f, "syscall GetTid"),
            SysCall::Spawn(_) => write!(f, "syscall Spawn"),
            SysCall::Wait(tid) => write!(f, "join #{tid}"),
            SysCall::Sleep(_) => write!(f, "sleep"),
            SysCall::ReadWait(fd) => write!(f, "wait for fd {fd} readable"),
            SysCall::Yield => write!(f, "yield"),
        }
    }
}

fn main() {
    let (mut read_end, mut write_end) = UnixStream::pair().expect("socket pair");
    read_end.set_nonblocking(true).expect("non-blocking");
    let mut os = Scheduler {
        trace: std::env::args().any(|a| a == "--trace"),
        ..Scheduler::default()
    };
    os.spawn(
        task(move |y| {
            let me = my_tid(y);
            println!("[task {me}] main: spawning a child, a reader and a writer");
            let child = match y.suspend(SysCall::Spawn(task(|y| {
                let me = my_tid(y);
                for step in 1..=3 {
                    println!("[task {me}] child: step {step}");
                    y.suspend(SysCall::Sleep(Duration::from_millis(10)));
                }
            }))) {
                Reply::Tid(tid) => tid,
                Reply::None => unreachable!(),
            };
            let reader = y.suspend(SysCall::Spawn(task(move |y| {
                let me = my_tid(y);
                println!("[task {me}] reader: waiting for data");
                y.suspend(SysCall::ReadWait(read_end.as_raw_fd()));
                let mut buf = [0; 64];
                let n = read_end.read(&mut buf).expect("readable");
                println!(
                    "[task {me}] reader: got {:?}",
                    String::from_utf8_lossy(&buf[..n])
                );
            })));
            let Reply::Tid(reader) = reader else {
                unreachable!()
            };
            y.suspend(SysCall::Spawn(task(move |y| {
                let me = my_tid(y);
                println!("[task {me}] writer: sleeping 30 ms, then writing");
                y.suspend(SysCall::Sleep(Duration::from_millis(30)));
                write!(write_end, "hello from task {me}").expect("write");
                y.suspend(SysCall::Yield);
            })));
            y.suspend(SysCall::Wait(child));
            y.suspend(SysCall::Wait(reader));
            println!("[task {me}] main: child and reader exited, all done");
        }),
        "spawned".into(),
    );
    os.run();
}
