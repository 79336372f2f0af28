//! The asyncio-style loop calls: call_soon FIFO, call_later/call_at order,
//! cancellation, stop/run_forever.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiberloop::EventLoop;

#[test]
fn call_soon_runs_callbacks_in_fifo_order() {
    let event_loop = EventLoop::new().unwrap();
    let handle = event_loop.handle();
    let log = Rc::new(RefCell::new(Vec::new()));
    for i in 0..100 {
        let log = log.clone();
        handle.call_soon(move || log.borrow_mut().push(i));
    }
    let stopper = handle.clone();
    handle.call_soon(move || stopper.stop());
    event_loop.run_forever();
    assert_eq!(*log.borrow(), (0..100).collect::<Vec<_>>());
}

#[test]
fn call_soon_from_a_callback_runs_after_those_already_queued() {
    let event_loop = EventLoop::new().unwrap();
    let handle = event_loop.handle();
    let log = Rc::new(RefCell::new(Vec::new()));
    let (h, l) = (handle.clone(), log.clone());
    handle.call_soon(move || {
        l.borrow_mut().push("first");
        let l2 = l.clone();
        h.call_soon(move || l2.borrow_mut().push("nested"));
    });
    let l = log.clone();
    handle.call_soon(move || l.borrow_mut().push("second"));
    let h = handle.clone();
    handle.call_later(Duration::from_millis(5), move || h.stop());
    event_loop.run_forever();
    assert_eq!(*log.borrow(), ["first", "second", "nested"]);
}

#[test]
fn timers_fire_in_deadline_order_and_cancelled_ones_never() {
    let event_loop = EventLoop::new().unwrap();
    let handle = event_loop.handle();
    let log = Rc::new(RefCell::new(Vec::new()));
    let now = handle.time();
    // Set out of order, including two with the same deadline.
    for (label, ms) in [("c", 30), ("a", 10), ("b1", 20), ("b2", 20)] {
        let log = log.clone();
        handle.call_at(now + Duration::from_millis(ms), move || {
            log.borrow_mut().push(label)
        });
    }
    let cancelled = {
        let log = log.clone();
        handle.call_later(Duration::from_millis(15), move || {
            log.borrow_mut().push("cancelled")
        })
    };
    assert!(cancelled.is_pending());
    assert!(cancelled.when().is_some());
    cancelled.cancel();
    cancelled.cancel(); // twice is fine
    assert!(!cancelled.is_pending());
    let h = handle.clone();
    handle.call_later(Duration::from_millis(40), move || h.stop());
    event_loop.run_forever();
    assert_eq!(*log.borrow(), ["a", "b1", "b2", "c"]);
}

#[test]
fn call_later_never_fires_early() {
    let event_loop = EventLoop::new().unwrap();
    let handle = event_loop.handle();
    let fired_at = Rc::new(RefCell::new(Vec::new()));
    let start = Instant::now();
    for ms in [1u64, 3, 7, 12] {
        let fired_at = fired_at.clone();
        handle.call_later(Duration::from_millis(ms), move || {
            fired_at.borrow_mut().push((ms, start.elapsed()));
        });
    }
    let h = handle.clone();
    handle.call_later(Duration::from_millis(15), move || h.stop());
    event_loop.run_forever();
    assert_eq!(fired_at.borrow().len(), 4);
    for (ms, elapsed) in fired_at.borrow().iter() {
        assert!(
            *elapsed >= Duration::from_millis(*ms),
            "{ms} ms timer fired after {elapsed:?}"
        );
    }
}

#[test]
fn run_forever_returns_after_stop_and_fibers_resume_next_time() {
    let event_loop = EventLoop::new().unwrap();
    let handle = event_loop.handle();
    let ticks = Rc::new(RefCell::new(0));
    let t = ticks.clone();
    let worker = fiberloop::spawn(move || {
        for _ in 0..4 {
            fiberloop::sleep(Duration::from_millis(2));
            *t.borrow_mut() += 1;
        }
        "done"
    });
    let h = handle.clone();
    handle.call_later(Duration::from_millis(3), move || h.stop());
    event_loop.run_forever();
    let seen = *ticks.borrow();
    assert!(seen < 4, "stopped before the worker finished (saw {seen})");
    assert!(!worker.is_finished());
    // A second run carries the same fiber on to the end.
    let result = event_loop.run_until_complete(move || worker.join().unwrap());
    assert_eq!(result, "done");
    assert_eq!(*ticks.borrow(), 4);
}

#[test]
fn a_panicking_callback_does_not_stop_the_loop() {
    let event_loop = EventLoop::new().unwrap();
    let handle = event_loop.handle();
    let ran = Rc::new(RefCell::new(false));
    handle.call_soon(|| panic!("callback failure (expected by the test)"));
    let r = ran.clone();
    handle.call_soon(move || *r.borrow_mut() = true);
    let h = handle.clone();
    handle.call_soon(move || h.stop());
    event_loop.run_forever();
    assert!(*ran.borrow());
}

#[test]
fn blocking_inside_a_callback_is_reported_not_hung() {
    let event_loop = EventLoop::new().unwrap();
    let handle = event_loop.handle();
    let after = Rc::new(RefCell::new(false));
    // sleep() in a callback would stall every fiber: it panics with an
    // explanation, the loop reports it and goes on.
    handle.call_soon(|| fiberloop::sleep(Duration::from_secs(3600)));
    let a = after.clone();
    handle.call_soon(move || *a.borrow_mut() = true);
    let h = handle.clone();
    handle.call_soon(move || h.stop());
    event_loop.run_forever();
    assert!(*after.borrow());
}

#[test]
fn one_loop_per_thread() {
    let first = EventLoop::new().unwrap();
    let second = EventLoop::new().unwrap_err();
    assert_eq!(second.kind(), std::io::ErrorKind::AlreadyExists);
    drop(first);
    EventLoop::new().expect("a new loop once the old one is gone");
}

#[test]
fn handle_reports_running_state() {
    assert!(fiberloop::try_handle().is_none());
    fiberloop::run(|| {
        assert!(fiberloop::handle().is_running());
    });
    assert!(fiberloop::try_handle().is_none(), "run removes its loop");
}
