//! async/await from scratch: a hand-written `Future`, a `Waker` and a small
//! executor, before fiberloop's own async face.
//!
//! Step 9 of docs/learn.md: after `echo_server`, before `echo_server_async` and `mixed`.
//!
//! Run: `cargo run --example async_from_scratch`
//!
//! For a Python reader (PEP 492):
//! - An `async fn` is a coroutine, and calling it runs nothing. Python hands
//!   back a coroutine object, Rust a `Future`. The compiler turns the body
//!   into a state machine, a stackless generator with one state per `.await`.
//! - `fut.await` is `yield from fut`: the caller's state machine suspends for
//!   as long as `fut` does.
//! - `Future::poll(cx)` is `coro.send(None)`: run to the next suspension.
//!   `Poll::Pending` is a yielded value, `Poll::Ready(v)` is `StopIteration(v)`.
//! - The `Waker` in `cx` is how a pending future asks to be polled again. It
//!   plays the part of asyncio's `Future.add_done_callback`, which puts the
//!   task back on the loop's ready queue.
//!
//! Below, `Sleep` is a hand-written future. `run` is the executor: a ready
//! queue, a timer list and a loop, with every poll and wake printed. Two
//! workers take turns, ann sleeping 30 ms per step and bob 20 ms:
//!
//! ```text
//! executor: poll task 0
//!     ann: step 1, then sleep 30 ms
//! executor: poll task 1
//!     bob: step 1, then sleep 20 ms
//!   waker: task 1 is ready again
//! executor: poll task 1
//!     bob: step 2, then sleep 20 ms
//!   waker: task 0 is ready again
//! ```
//!
//! Each task is polled once to start and once per wake: ann 3 times, bob 4.
//! fiberloop's async face (`fiberloop::block_on`, `fiberloop::task::spawn`)
//! is this, with epoll in place of the plain sleep and one waker per task
//! kept instead of a new one per poll.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

thread_local! {
    /// The executor's timers: when, and whom to wake.
    static TIMERS: RefCell<Vec<(Instant, Waker)>> = const { RefCell::new(Vec::new()) };
}

/// A future that is ready once `until` has passed.
struct Sleep {
    until: Instant,
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.until {
            return Poll::Ready(());
        }
        // Not yet: leave the waker with the timers, and say "not ready".
        TIMERS.with(|t| t.borrow_mut().push((self.until, cx.waker().clone())));
        Poll::Pending
    }
}

fn sleep(d: Duration) -> Sleep {
    Sleep {
        until: Instant::now() + d,
    }
}

/// A task's waker: waking it puts the task's number on the ready queue.
struct TaskWaker {
    id: usize,
    ready: Arc<Mutex<VecDeque<usize>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        println!("  waker: task {} is ready again", self.id);
        self.ready.lock().unwrap().push_back(self.id);
    }
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// The executor: polls ready tasks; when none is ready, sleeps until the
/// first timer and wakes whoever waits on it.
fn run(tasks: Vec<Task>) {
    let ready = Arc::new(Mutex::new((0..tasks.len()).collect::<VecDeque<_>>()));
    let mut tasks: Vec<Option<Task>> = tasks.into_iter().map(Some).collect();
    let mut left = tasks.len();
    while left > 0 {
        let next = ready.lock().unwrap().pop_front();
        if let Some(id) = next {
            let Some(task) = tasks[id].as_mut() else {
                continue;
            };
            let waker = Waker::from(Arc::new(TaskWaker {
                id,
                ready: ready.clone(),
            }));
            println!("executor: poll task {id}");
            if task
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
            {
                println!("executor: task {id} is done");
                tasks[id] = None;
                left -= 1;
            }
            continue;
        }
        // Nothing ready: wait for the earliest timer (a real loop would wait
        // in epoll_wait here, for sockets too), then wake its task.
        let (when, waker) = TIMERS.with(|t| {
            let mut timers = t.borrow_mut();
            let first = (0..timers.len())
                .min_by_key(|&i| timers[i].0)
                .expect("a timer");
            timers.swap_remove(first)
        });
        std::thread::sleep(when.saturating_duration_since(Instant::now()));
        waker.wake();
    }
}

/// What a user writes: an `async fn`, blind to the machinery above.
async fn worker(name: &'static str, steps: u32, pause: Duration) {
    for step in 1..=steps {
        println!(
            "    {name}: step {step}, then sleep {} ms",
            pause.as_millis()
        );
        sleep(pause).await;
    }
    println!("    {name}: finished");
}

fn main() {
    run(vec![
        Box::pin(worker("ann", 2, Duration::from_millis(30))),
        Box::pin(worker("bob", 3, Duration::from_millis(20))),
    ]);
}
