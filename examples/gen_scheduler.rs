//! An operating system made of generators, after David Beazley's "pyos"
//! ("A Curious Course on Coroutines and Concurrency"): tasks are generators,
//! and what they *yield* are system calls for a small round-robin scheduler.
//! It is what fiberloop's real scheduler does, from scratch, in ~150 lines.
//!
//! Run: `cargo run --example gen_scheduler`
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
    ready: VecDeque<(Tid, Reply)>,
    sleeping: Vec<(Instant, Tid)>,
    reading: HashMap<RawFd, Tid>,
    exit_waiters: HashMap<Tid, Vec<Tid>>,
    next_tid: Tid,
}

impl Scheduler {
    fn spawn(&mut self, task: Task) -> Tid {
        self.next_tid += 1;
        self.tasks.insert(self.next_tid, task);
        self.ready.push_back((self.next_tid, Reply::None));
        self.next_tid
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
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        for pfd in fds.iter().filter(|p| p.revents != 0) {
            let tid = self.reading.remove(&pfd.fd).expect("registered");
            self.ready.push_back((tid, Reply::None));
        }
        let now = Instant::now();
        let (due, later) = self.sleeping.drain(..).partition(|(when, _)| *when <= now);
        self.sleeping = later;
        self.ready.extend(
            due.into_iter()
                .map(|(_, tid): (Instant, Tid)| (tid, Reply::None)),
        );
    }

    fn run(&mut self) {
        while !self.tasks.is_empty() {
            let Some((tid, reply)) = self.ready.pop_front() else {
                self.wait_for_events();
                continue;
            };
            let task = self.tasks.get_mut(&tid).expect("ready tasks exist");
            match task.resume(reply) {
                Ok(GeneratorState::Yielded(call)) => self.syscall(tid, call),
                Ok(GeneratorState::Complete(())) | Err(_) => {
                    self.tasks.remove(&tid);
                    for waiter in self.exit_waiters.remove(&tid).unwrap_or_default() {
                        self.ready.push_back((waiter, Reply::None));
                    }
                }
            }
        }
    }

    fn syscall(&mut self, tid: Tid, call: SysCall) {
        match call {
            SysCall::GetTid => self.ready.push_back((tid, Reply::Tid(tid))),
            SysCall::Spawn(child) => {
                let child = self.spawn(child);
                self.ready.push_back((tid, Reply::Tid(child)));
            }
            SysCall::Wait(other) if self.tasks.contains_key(&other) => {
                self.exit_waiters.entry(other).or_default().push(tid);
            }
            SysCall::Wait(_) | SysCall::Yield => self.ready.push_back((tid, Reply::None)),
            SysCall::Sleep(d) => self.sleeping.push((Instant::now() + d, tid)),
            SysCall::ReadWait(fd) => {
                self.reading.insert(fd, tid);
            }
        }
    }
}

fn main() {
    let (mut read_end, mut write_end) = UnixStream::pair().expect("socket pair");
    read_end.set_nonblocking(true).expect("non-blocking");
    let mut os = Scheduler::default();
    os.spawn(task(move |y| {
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
    }));
    os.run();
}
