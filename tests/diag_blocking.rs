//! The blocking detector (`FIBERLOOP_BLOCKING_MS`): a fiber that holds its
//! loop (spinning, or in `std::thread::sleep`) is reported while it holds
//! it, by name and spawn location, with a frame of the function it is in.
//!
//! The report goes to stderr, so each case runs in a child process: this
//! test binary again (`util::run_in_child_with`).

use std::time::{Duration, Instant};

mod util;
use util::in_child;

/// Runs test `case` of this binary in a child with the detector at 50 ms;
/// returns its stderr.
fn stderr_of(case: &str) -> String {
    let envs = [("FIBERLOOP_BLOCKING_MS", "50"), ("FIBERLOOP_STALL_MS", "0")];
    util::run_in_child_ok_with(case, &envs).1
}

#[inline(never)]
fn spin_for(duration: Duration) -> u64 {
    let start = Instant::now();
    let mut turns = 0u64;
    while start.elapsed() < duration {
        turns = std::hint::black_box(turns + 1);
    }
    turns
}

#[inline(never)]
fn sleep_the_thread(duration: Duration) -> Duration {
    let start = Instant::now();
    std::thread::sleep(duration);
    // Work after the call keeps it a call (not a tail jump) in release builds.
    std::hint::black_box(start.elapsed())
}

/// Holds the loop in `hold` from a fiber named "holder" while a ticker
/// fiber would like to run.
fn hold_the_loop(hold: fn()) {
    fiberloop::run(move || {
        let ticker = fiberloop::spawn(|| {
            for _ in 0..3 {
                fiberloop::sleep(Duration::from_millis(5));
            }
        });
        let holder = fiberloop::Builder::new()
            .name("holder")
            .spawn(hold)
            .unwrap();
        holder.join().unwrap();
        ticker.join().unwrap();
        // Give the watchdog a look after the hold (it says when it ended).
        fiberloop::sleep(Duration::from_millis(100));
    });
}

#[test]
fn child_spins() {
    if in_child() {
        hold_the_loop(|| {
            spin_for(Duration::from_millis(1500));
        });
    }
}

#[test]
fn child_sleeps_the_thread() {
    if in_child() {
        hold_the_loop(|| {
            sleep_the_thread(Duration::from_millis(1500));
        });
    }
}

#[test]
fn child_yields_often() {
    if in_child() {
        hold_the_loop(|| {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(400) {
                spin_for(Duration::from_millis(5));
                fiberloop::yield_now();
            }
        });
    }
}

fn assert_reported(stderr: &str, frame: &str) {
    let report = stderr
        .lines()
        .position(|line| line.starts_with("fiberloop: blocking: fiber #"))
        .map(|at| {
            stderr
                .lines()
                .skip(at)
                .take(40)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_else(|| panic!("no blocking report in:\n{stderr}"));
    assert!(
        report.contains("'holder' (spawned at tests/diag_blocking.rs:"),
        "{report}"
    );
    assert!(report.contains("without giving it back"), "{report}");
    assert!(report.contains(frame), "no frame of {frame} in:\n{report}");
    assert!(stderr.contains("is running again after"), "{stderr}");
}

#[test]
fn a_cpu_bound_stall_is_reported_with_the_spinning_function() {
    if in_child() {
        return;
    }
    assert_reported(&stderr_of("child_spins"), "diag_blocking::spin_for");
}

// With the `hook` feature, `std::thread::sleep` in a fiber parks it instead.
#[cfg(not(feature = "hook"))]
#[test]
fn a_thread_sleep_in_a_fiber_is_reported_with_the_sleeping_function() {
    if in_child() {
        return;
    }
    assert_reported(
        &stderr_of("child_sleeps_the_thread"),
        "diag_blocking::sleep_the_thread",
    );
}

#[test]
fn a_fiber_that_yields_often_is_not_reported() {
    if in_child() {
        return;
    }
    let stderr = stderr_of("child_yields_often");
    assert!(!stderr.contains("fiberloop: blocking:"), "{stderr}");
}

#[test]
fn child_spins_in_an_async_task() {
    if in_child() {
        fiberloop::block_on(async {
            spin_for(Duration::from_millis(1500));
        });
    }
}

#[test]
fn an_async_task_that_holds_the_loop_is_reported_too() {
    if in_child() {
        return;
    }
    let stderr = stderr_of("child_spins_in_an_async_task");
    assert!(
        stderr.contains("fiberloop: blocking: async task #"),
        "{stderr}"
    );
    assert!(stderr.contains("diag_blocking::spin_for"), "{stderr}");
}
