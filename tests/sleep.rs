//! sleep and yield_now: ordering, never early, never spinning.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[test]
fn sleep_never_returns_early() {
    fiberloop::run(|| {
        let handles: Vec<_> = [1u64, 2, 5, 9, 13, 0]
            .into_iter()
            .map(|ms| {
                fiberloop::spawn(move || {
                    let d = Duration::from_millis(ms);
                    let start = Instant::now();
                    fiberloop::sleep(d);
                    (d, start.elapsed())
                })
            })
            .collect();
        for h in handles {
            let (asked, slept) = h.join().unwrap();
            assert!(slept >= asked, "asked {asked:?}, slept {slept:?}");
        }
    });
}

#[test]
fn sleepers_wake_in_deadline_order() {
    let order = fiberloop::run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let handles: Vec<_> = [30u64, 10, 20]
            .into_iter()
            .map(|ms| {
                let log = log.clone();
                fiberloop::spawn(move || {
                    fiberloop::sleep(Duration::from_millis(ms));
                    log.borrow_mut().push(ms);
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        let v = log.borrow().clone();
        v
    });
    assert_eq!(order, vec![10, 20, 30]);
}

#[test]
fn yield_now_round_robins() {
    let log = fiberloop::run(|| {
        let log = Rc::new(RefCell::new(String::new()));
        let handles: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let log = log.clone();
                fiberloop::spawn(move || {
                    for _ in 0..3 {
                        log.borrow_mut().push_str(name);
                        fiberloop::yield_now();
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        let s = log.borrow().clone();
        s
    });
    assert_eq!(log, "ababab");
}

#[test]
fn a_sleeping_loop_does_not_spin() {
    // A fiber sleeping 200 ms: the thread's CPU time over that period must be
    // a small fraction of it (a spinning loop would use all of it).
    let cpu = || {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes into the valid buffer we pass.
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
        // SAFETY: initialised by getrusage above (zeroed otherwise).
        let usage = unsafe { usage.assume_init() };
        Duration::new(
            usage.ru_utime.tv_sec as u64,
            usage.ru_utime.tv_usec as u32 * 1000,
        ) + Duration::new(
            usage.ru_stime.tv_sec as u64,
            usage.ru_stime.tv_usec as u32 * 1000,
        )
    };
    let before = cpu();
    fiberloop::run(|| fiberloop::sleep(Duration::from_millis(200)));
    let used = cpu() - before;
    assert!(
        used < Duration::from_millis(100),
        "the loop used {used:?} of CPU while sleeping 200 ms"
    );
}

#[test]
fn outside_a_loop_sleep_and_yield_use_the_thread() {
    let start = Instant::now();
    fiberloop::sleep(Duration::from_millis(5));
    fiberloop::yield_now();
    assert!(start.elapsed() >= Duration::from_millis(5));
}

#[test]
fn a_sleep_whose_deadline_has_passed_still_lets_the_others_run() {
    fiberloop::run(|| {
        let ran = Rc::new(std::cell::Cell::new(false));
        let r = ran.clone();
        let other = fiberloop::spawn(move || r.set(true));
        // As when the thread is preempted for longer than the sleep.
        fiberloop::sleep_until(Instant::now() - Duration::from_millis(1));
        assert!(ran.get(), "the ready fiber ran during the sleep");
        other.join().unwrap();
    });
}
