//! The deadlock report: two fibers that lock two mutexes in opposite order
//! are found as a wait-for cycle, the report names both and the locks, and
//! `run` panics with it instead of hanging.

use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use fiberloop::sync::Mutex;

/// Runs `body` on its own thread and returns the deadlock report `run`
/// panicked with; fails (instead of hanging) if nothing came within a
/// minute, or if what came is not a deadlock report.
fn deadlock_report_of(body: fn()) -> String {
    let message = panic_message_of(body);
    assert!(
        message.starts_with("fiberloop: deadlock on loop"),
        "{message}"
    );
    message
}

/// Runs `body` on its own thread and returns the message `run` panicked
/// with; fails (instead of hanging) if nothing came within a minute.
fn panic_message_of(body: fn()) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(body));
        let message = match result {
            Ok(()) => "run returned normally".to_string(),
            Err(payload) => payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "a panic without a message".to_string()),
        };
        let _ = tx.send(message);
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the deadlock was not reported within a minute")
}

/// Takes `first`, lets the other fiber run, then takes `second`. Not
/// inlined, so that it is a frame of its own in release builds too.
#[inline(never)]
fn lock_in_order(first: &Mutex<()>, second: &Mutex<()>) {
    let _one = first.lock().unwrap();
    fiberloop::sleep(Duration::from_millis(10));
    let _two = second.lock().unwrap();
}

/// Fibers "left" and "right" take `a` and `b` in opposite order, each
/// sleeping in between so that both hold one lock.
fn opposite_order(with_ticker: bool) {
    fiberloop::run(move || {
        let a = Rc::new(Mutex::new(()));
        let b = Rc::new(Mutex::new(()));
        let take = |name: &str, first: Rc<Mutex<()>>, second: Rc<Mutex<()>>| {
            fiberloop::Builder::new()
                .name(name)
                .spawn(move || lock_in_order(&first, &second))
                .unwrap()
        };
        let left = take("left", a.clone(), b.clone());
        let right = take("right", b, a);
        if with_ticker {
            // Timers keep the loop from ever idling: the cycle must be found anyway.
            fiberloop::spawn(|| loop {
                fiberloop::sleep(Duration::from_millis(5));
            });
        }
        let _ = left.join();
        let _ = right.join();
    });
}

#[test]
fn opposite_order_locking_is_reported_and_run_panics_with_the_report() {
    let message = deadlock_report_of(|| opposite_order(false));
    assert!(
        message.contains("'left' waits for mutex 0x")
            && message.contains("'right' waits for mutex 0x"),
        "{message}"
    );
    assert!(
        message.contains("held by fiber #") && message.contains("'right'\n"),
        "{message}"
    );
    // The dump follows, with where each fiber is.
    assert!(message.contains("'main': parked for"), "{message}");
    assert!(message.contains("on join of fiber #"), "{message}");
    assert!(
        message.contains("diag_deadlock::lock_in_order"),
        "{message}"
    );
}

#[test]
fn a_cycle_is_found_while_timers_keep_the_loop_busy() {
    // The helper checks that `run` ended with a deadlock report.
    deadlock_report_of(|| opposite_order(true));
}

#[test]
fn a_lock_wait_with_a_deadline_is_not_a_deadlock() {
    fiberloop::run(|| {
        let a = Rc::new(Mutex::new(()));
        let b = Rc::new(Mutex::new(()));
        let take = |first: Rc<Mutex<()>>, second: Rc<Mutex<()>>| {
            fiberloop::spawn(move || {
                let _one = first.lock().unwrap();
                fiberloop::sleep(Duration::from_millis(10));
                second.lock_timeout(Duration::from_millis(300)).is_ok()
            })
        };
        let left = take(a.clone(), b.clone());
        let right = take(b, a);
        let results = [left.join().unwrap(), right.join().unwrap()];
        // One times out, and then the other gets its lock.
        assert!(results.contains(&false), "{results:?}");
    });
}

#[test]
fn a_runtime_raises_the_report_from_its_run() {
    // The helper checks that `Runtime::run` ended with a deadlock report.
    deadlock_report_of(|| {
        let runtime = fiberloop::Runtime::builder().loops(1).build().unwrap();
        runtime.run(|| {
            let a = std::sync::Arc::new(Mutex::new(()));
            let b = std::sync::Arc::new(Mutex::new(()));
            let (a2, b2) = (a.clone(), b.clone());
            let left = fiberloop::spawn(move || lock_in_order(&a, &b));
            let right = fiberloop::spawn(move || lock_in_order(&b2, &a2));
            left.join().unwrap();
            right.join().unwrap();
        });
    });
}
