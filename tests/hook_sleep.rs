//! The `hook` feature and `std::thread::sleep`: in a fiber it parks only the
//! fiber (glibc's `clock_nanosleep` is hooked), and cancellation and timeout
//! scopes reach it.
#![cfg(feature = "hook")]

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

mod util;

#[test]
fn a_thousand_fibers_sleeping_with_std_overlap() {
    let started = Instant::now();
    fiberloop::run(|| {
        let sleepers: Vec<_> = (0..1000)
            .map(|i| {
                fiberloop::spawn(move || {
                    std::thread::sleep(Duration::from_millis(100));
                    i
                })
            })
            .collect();
        let sum: usize = sleepers.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 999 * 1000 / 2);
    });
    // Serially this would take 100 s; overlapped it takes about 0.1 s. The
    // bound is generous for a shared machine.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn other_fibers_run_while_one_sleeps_with_std() {
    fiberloop::run(|| {
        let (ticks, stop) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
        let ticker = util::spawn_ticker(ticks.clone(), stop.clone());
        let before = ticks.get();
        std::thread::sleep(Duration::from_millis(100));
        // Blocked, the loop could not have run the ticker during the sleep.
        assert!(ticks.get() > before, "the ticker ran during the std sleep");
        stop.set(true);
        ticker.join().unwrap();
    });
}

#[test]
fn a_fiber_in_a_std_sleep_can_be_cancelled() {
    fiberloop::run(|| {
        let sleeper = fiberloop::spawn(|| {
            std::thread::sleep(Duration::from_secs(3600));
            // The sleep returned early; the next park unwinds the fiber.
            fiberloop::sleep(Duration::from_secs(3600));
            unreachable!("a cancelled fiber does not get past its next park");
        });
        fiberloop::sleep(Duration::from_millis(10));
        sleeper.cancel();
        assert!(sleeper.join().unwrap_err().is_cancelled());
    });
}

#[test]
fn a_timeout_scope_ends_a_std_sleep() {
    fiberloop::run(|| {
        let started = Instant::now();
        let result = fiberloop::timeout(Duration::from_millis(20), || {
            std::thread::sleep(Duration::from_secs(3600));
        });
        assert!(result.is_err(), "the deadline passed inside the sleep");
        assert!(started.elapsed() < Duration::from_secs(60));
    });
}

#[test]
fn outside_a_fiber_std_sleep_still_sleeps_the_thread() {
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(30));
    assert!(started.elapsed() >= Duration::from_millis(30));
}
