//! Thread-pool offload: `unblock` parks only its fiber, re-raises panics,
//! honours the pool's bound and cancellation, and the pool ends with its loop.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn unblock_runs_off_the_loop_while_other_fibers_go_on() {
    fiberloop::run(|| {
        let ticks = Rc::new(Cell::new(0));
        let ticker = fiberloop::spawn({
            let ticks = ticks.clone();
            move || {
                for _ in 0..5 {
                    fiberloop::sleep(Duration::from_millis(5));
                    ticks.set(ticks.get() + 1);
                }
            }
        });
        let loop_thread = std::thread::current().id();
        let ran_on = fiberloop::unblock(|| {
            std::thread::sleep(Duration::from_millis(60));
            std::thread::current().id()
        })
        .unwrap();
        assert_ne!(ran_on, loop_thread);
        assert_eq!(
            ticks.get(),
            5,
            "the ticker ran while the blocking call slept"
        );
        ticker.join().unwrap();
    });
}

#[test]
fn a_panic_in_the_blocking_call_is_raised_in_the_calling_fiber() {
    fiberloop::run(|| {
        let caller = fiberloop::spawn(|| fiberloop::unblock(|| -> u32 { panic!("disk on fire") }));
        let err = caller.join().unwrap_err();
        assert!(err.is_panic());
        assert_eq!(
            err.into_panic().downcast_ref::<&str>(),
            Some(&"disk on fire")
        );
        // The loop and the pool carry on.
        assert_eq!(fiberloop::unblock(|| 7).unwrap(), 7);
    });
}

#[test]
fn the_pool_runs_at_most_its_bound_at_once() {
    fiberloop::run(|| {
        fiberloop::handle().set_max_blocking_threads(2);
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let callers: Vec<_> = (0..6)
            .map(|i| {
                let (running, peak) = (running.clone(), peak.clone());
                fiberloop::spawn(move || {
                    fiberloop::unblock(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(10));
                        running.fetch_sub(1, Ordering::SeqCst);
                        i
                    })
                    .unwrap()
                })
            })
            .collect();
        let results: Vec<usize> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        assert_eq!(results, [0, 1, 2, 3, 4, 5]);
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn a_cancelled_fiber_stops_waiting_for_its_blocking_call() {
    fiberloop::run(|| {
        let waiter =
            fiberloop::spawn(|| fiberloop::unblock(|| std::thread::sleep(Duration::from_secs(2))));
        fiberloop::sleep(Duration::from_millis(10));
        let start = Instant::now();
        waiter.cancel();
        assert!(waiter.join().unwrap_err().is_cancelled());
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "not after the call"
        );
    });
}

#[test]
fn the_async_face_and_the_plain_thread_face_work() {
    let v = fiberloop::block_on(async { fiberloop::unblock_async(|| 21 * 2).await.unwrap() });
    assert_eq!(v, 42);
    // No loop: the call runs right here.
    let here = std::thread::current().id();
    assert!(fiberloop::unblock(move || std::thread::current().id() == here).unwrap());
    // Polled by another executor, outside any loop: a process-wide pool runs it.
    let v = futures_lite::future::block_on(fiberloop::unblock_async(|| "pooled"));
    assert_eq!(v.unwrap(), "pooled");
}

fn pool_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "fiberloop-block")
        .count()
}

#[test]
fn the_pool_shuts_down_with_its_loop() {
    if !util::in_child() {
        let out = util::run_in_child("the_pool_shuts_down_with_its_loop");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    fiberloop::run(|| {
        let calls: Vec<_> = (0..4)
            .map(|_| {
                fiberloop::spawn(|| {
                    fiberloop::unblock(|| std::thread::sleep(Duration::from_millis(5)))
                })
            })
            .collect();
        calls.into_iter().for_each(|c| c.join().unwrap().unwrap());
        assert!(pool_threads() >= 1, "the calls ran on pool threads");
    });
    // The loop is gone: its idle threads exit at once, not after the keep-alive.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool_threads() > 0 {
        assert!(
            Instant::now() < deadline,
            "pool threads outlived their loop"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
