//! The async/await model on the fiber loop: spawning, awaiting, cancelling,
//! wakers from other threads, and both models side by side.

mod util;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use util::DropCounter;

#[test]
fn block_on_runs_tasks_and_returns_the_value() {
    let v = fiberloop::block_on(async {
        let tasks: Vec<_> = (1..=10)
            .map(|i| fiberloop::task::spawn(async move { i * i }))
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap();
        }
        sum
    });
    assert_eq!(v, 385);
}

#[test]
fn fibers_and_async_tasks_share_one_loop() {
    let log = fiberloop::run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let task = fiberloop::task::spawn(async move {
            for i in 0..3 {
                fiberloop::time::sleep(Duration::from_millis(4)).await;
                l.borrow_mut().push(format!("task {i}"));
            }
            "task done"
        });
        let l = log.clone();
        let fiber = fiberloop::spawn(move || {
            fiberloop::sleep(Duration::from_millis(2));
            for i in 0..3 {
                l.borrow_mut().push(format!("fiber {i}"));
                fiberloop::sleep(Duration::from_millis(4));
            }
            "fiber done"
        });
        // A fiber waits for the async task; the task's timers run meanwhile.
        assert_eq!(fiberloop::wait(task).unwrap().unwrap(), "task done");
        assert_eq!(fiber.join().unwrap(), "fiber done");
        let v = log.borrow().clone();
        v
    });
    assert_eq!(
        log,
        ["fiber 0", "task 0", "fiber 1", "task 1", "fiber 2", "task 2"]
    );
}

#[test]
fn async_code_awaits_a_fiber() {
    let v = fiberloop::block_on(async {
        let fiber = fiberloop::spawn(|| {
            fiberloop::sleep(Duration::from_millis(3));
            7
        });
        fiber.await.unwrap() * 6
    });
    assert_eq!(v, 42);
}

#[test]
fn a_panicking_task_is_isolated() {
    fiberloop::block_on(async {
        let bad = fiberloop::task::spawn(async {
            fiberloop::time::sleep(Duration::from_millis(1)).await;
            panic!("task failure (expected by the test)");
        });
        let good = fiberloop::task::spawn(async { 1 });
        let err = bad.await.unwrap_err();
        assert_eq!(
            err.panic_message(),
            Some("task failure (expected by the test)")
        );
        assert_eq!(good.await.unwrap(), 1);
    });
}

#[test]
fn dropping_a_task_cancels_it_and_runs_its_destructors() {
    let drops = DropCounter::default();
    let d = drops.clone();
    let reached = Rc::new(RefCell::new(false));
    let r = reached.clone();
    fiberloop::block_on(async move {
        let token = d.token();
        let task = fiberloop::task::spawn(async move {
            let _token = token;
            fiberloop::time::sleep(Duration::from_secs(3600)).await;
            *r.borrow_mut() = true;
        });
        fiberloop::time::sleep(Duration::from_millis(2)).await; // let it start
        drop(task);
        fiberloop::time::sleep(Duration::from_millis(2)).await; // the loop cancels it
        assert_eq!(d.count(), 1, "cancelled within one loop turn");
    });
    assert_eq!(drops.count(), 1);
    assert!(!*reached.borrow());
}

#[test]
fn a_detached_task_runs_to_completion() {
    let done = Rc::new(RefCell::new(false));
    let d = done.clone();
    fiberloop::block_on(async move {
        let handle = fiberloop::task::spawn(async move {
            fiberloop::time::sleep(Duration::from_millis(2)).await;
            *d.borrow_mut() = true;
        })
        .detach();
        drop(handle);
        fiberloop::time::sleep(Duration::from_millis(10)).await;
    });
    assert!(*done.borrow());
}

#[test]
fn timeout_cancels_the_inner_future() {
    let drops = DropCounter::default();
    let d = drops.clone();
    fiberloop::block_on(async move {
        let token = d.token();
        let start = Instant::now();
        let result = fiberloop::time::timeout(Duration::from_millis(10), async move {
            let _token = token;
            fiberloop::time::sleep(Duration::from_secs(3600)).await;
        })
        .await;
        assert!(result.is_err());
        assert!(start.elapsed() >= Duration::from_millis(10), "never early");
        assert_eq!(
            d.count(),
            1,
            "the inner future was dropped when the time ran out"
        );
        let fast = fiberloop::time::timeout(Duration::from_secs(10), async { 5 }).await;
        assert_eq!(fast, Ok(5));
    });
}

/// A future that stores its waker for another thread and counts polls.
struct Remote {
    polls: Rc<RefCell<usize>>,
    fired: Arc<AtomicUsize>,
    waker_out: std::sync::mpsc::Sender<Waker>,
    target: usize,
}

impl Future for Remote {
    type Output = usize;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        *self.polls.borrow_mut() += 1;
        if self.fired.load(Ordering::SeqCst) >= self.target {
            return Poll::Ready(*self.polls.borrow());
        }
        self.waker_out.send(cx.waker().clone()).unwrap();
        Poll::Pending
    }
}

#[test]
fn a_waker_woken_from_another_thread_reaches_the_sleeping_loop() {
    let (tx, rx) = std::sync::mpsc::channel::<Waker>();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let waker_thread = std::thread::spawn(move || {
        for waker in rx {
            std::thread::sleep(Duration::from_millis(5)); // the loop is asleep in poll by now
            f.fetch_add(1, Ordering::SeqCst);
            waker.wake();
            if f.load(Ordering::SeqCst) == 3 {
                break;
            }
        }
    });
    let polls = fiberloop::block_on(async move {
        Remote {
            polls: Rc::new(RefCell::new(0)),
            fired,
            waker_out: tx,
            target: 3,
        }
        .await
    });
    waker_thread.join().unwrap();
    assert_eq!(polls, 4, "one poll per wake, plus the first");
}

#[test]
fn many_wakes_of_cloned_wakers_poll_once_per_cycle_and_lose_none() {
    // The task is woken 1,000 times per cycle from this thread and 1,000 from
    // another; it must be polled once per cycle and never miss the last wake.
    let polls = Rc::new(RefCell::new(0usize));
    let p = polls.clone();
    let cycles = fiberloop::block_on(async move {
        let mut cycles = 0;
        std::future::poll_fn(|cx| {
            *p.borrow_mut() += 1;
            if cycles == 50 {
                return Poll::Ready(());
            }
            cycles += 1;
            let waker = cx.waker().clone();
            for _ in 0..1000 {
                let clone = waker.clone(); // woken by value: the clone is consumed
                clone.wake();
            }
            let remote = cx.waker().clone();
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    remote.wake_by_ref();
                }
            });
            Poll::Pending
        })
        .await;
        cycles
    });
    assert_eq!(cycles, 50);
    let polls = *polls.borrow();
    // One poll per cycle from the local wakes; remote wakes may add at most a
    // few extra (spurious) polls, never thousands.
    assert!((51..=51 + 2 * 50).contains(&polls), "polls: {polls}");
}

#[test]
fn blocking_calls_inside_async_tasks_fail_loudly() {
    fiberloop::block_on(async {
        let bad = fiberloop::task::spawn(async { fiberloop::sleep(Duration::from_millis(1)) });
        let err = bad.await.unwrap_err();
        assert!(
            err.panic_message()
                .unwrap_or("")
                .contains("blocking call outside a fiber"),
            "{err}"
        );
    });
}
