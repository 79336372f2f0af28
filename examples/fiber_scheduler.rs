//! From generators to green threads: `gen_scheduler` again, but its tasks
//! are fibers that call plain `sleep` and `read` functions. No `y` is passed
//! around and no system call is yielded by hand.
//!
//! Step 6 of docs/learn.md: after `gen_scheduler`, before `hello`.
//! Run: `cargo run --example fiber_scheduler`
//! In `gen_scheduler` a task yielded a request (`Sleep`, `ReadWait`) with its
//! yielder. Here each fiber has a stack of its own (a corosensei coroutine), so
//! any function it calls can switch back to the scheduler: `sleep` and `read`
//! do, through `trap`, which finds the running fiber's yielder in a
//! thread-local. fiberloop's `sleep` and sockets work the same way, with a
//! waker per wait. Lines from the scheduler start with `sched:`.

use corosensei::{Coroutine, CoroutineResult, Yielder};
use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token};
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// Why a fiber switched back: `gen_scheduler`'s system calls, made for it.
enum Trap {
    Sleep(Instant),
    Readable(Token),
}

thread_local! {
    /// The running fiber's yielder; null outside a fiber.
    static CURRENT: Cell<*const Yielder<(), Trap>> = const { Cell::new(std::ptr::null()) };
}

/// Switches from the running fiber's stack to the scheduler's, saying why.
fn trap(why: Trap) {
    let y = CURRENT.get();
    assert!(!y.is_null(), "sleep or read outside a fiber");
    // SAFETY: `y` was set by the fiber now running (we are on its stack),
    // from the yielder corosensei gave it, which lives as long as its stack.
    let y = unsafe { &*y };
    y.suspend(why);
    CURRENT.set(y); // back on this stack: the yielder is ours again
}

/// A blocking-style sleep: parks the calling fiber until `d` has passed.
fn sleep(d: Duration) {
    trap(Trap::Sleep(Instant::now() + d));
}
/// A blocking-style read: tries, and on `WouldBlock` parks until readable.
fn read(stream: &mut UnixStream, token: Token, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                println!("    reader: read → WouldBlock, park until readable");
                trap(Trap::Readable(token));
            }
            other => return other,
        }
    }
}

type Fiber = Coroutine<(), Trap, ()>;
#[derive(Default)]
struct Scheduler {
    fibers: Vec<(&'static str, Option<Fiber>)>,
    ready: VecDeque<usize>,
    sleeping: Vec<(Instant, usize)>,
    waiting: HashMap<Token, usize>,
}

impl Scheduler {
    fn spawn(&mut self, name: &'static str, body: impl FnOnce() + 'static) {
        let fiber = Coroutine::new(move |y: &Yielder<(), Trap>, ()| {
            CURRENT.set(y);
            body();
        });
        self.ready.push_back(self.fibers.len());
        self.fibers.push((name, Some(fiber)));
    }

    fn run(&mut self, poll: &mut Poll) -> io::Result<()> {
        let mut events = Events::with_capacity(16);
        loop {
            while let Some(id) = self.ready.pop_front() {
                let (name, slot) = &mut self.fibers[id];
                let fiber = slot.as_mut().expect("a ready fiber is alive");
                let trapped = fiber.resume(());
                CURRENT.set(std::ptr::null()); // back on the scheduler's stack
                match trapped {
                    CoroutineResult::Yield(Trap::Sleep(until)) => self.sleeping.push((until, id)),
                    CoroutineResult::Yield(Trap::Readable(t)) => _ = self.waiting.insert(t, id),
                    CoroutineResult::Return(()) => {
                        println!("sched: {name} finished");
                        *slot = None; // its stack is freed
                    }
                }
            }
            if self.sleeping.is_empty() && self.waiting.is_empty() {
                println!("sched: all fibers done");
                return Ok(());
            }
            // Wait for I/O, at most until the first sleeper is due.
            let first = self.sleeping.iter().map(|s| s.0).min();
            let timeout = first.map(|t| t - Instant::now().min(t));
            poll.poll(&mut events, timeout)?;
            for event in &events {
                if let Some(id) = self.waiting.remove(&event.token()) {
                    println!("sched: epoll says readable: wake {}", self.fibers[id].0);
                    self.ready.push_back(id);
                }
            }
            let now = Instant::now();
            let (due, later) = self.sleeping.drain(..).partition(|s| s.0 <= now);
            self.sleeping = later;
            self.ready
                .extend(due.into_iter().map(|(_, id): (Instant, usize)| id));
        }
    }
}

fn main() -> io::Result<()> {
    let (mut poll, (mut rx, mut tx)) = (Poll::new()?, UnixStream::pair()?);
    const RX: Token = Token(0);
    // Edge-triggered: registered once; `read` reads until WouldBlock.
    poll.registry().register(&mut rx, RX, Interest::READABLE)?;
    let mut sched = Scheduler::default();
    sched.spawn("reader", move || {
        let mut buf = [0; 64];
        loop {
            let n = read(&mut rx, RX, &mut buf).expect("read");
            match n {
                0 => return println!("    reader: end of stream"),
                _ => println!("    reader: got {:?}", String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
    sched.spawn("writer", move || {
        for word in ["hello", "world"] {
            sleep(Duration::from_millis(40));
            println!("    writer: send {word:?}");
            tx.write_all(word.as_bytes()).expect("write");
        }
    }); // the writer's end closes as it finishes: the reader sees the end
    sched.spawn("ticker", || {
        for i in 1..=3 {
            println!("    ticker: tick {i}");
            sleep(Duration::from_millis(30));
        }
    });
    sched.run(&mut poll)
}
