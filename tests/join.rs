//! spawn/join: values, panics, detaching, joining from another thread.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

#[test]
fn join_returns_the_value() {
    let v = fiberloop::run(|| fiberloop::spawn(|| vec![1, 2, 3]).join().unwrap());
    assert_eq!(v, vec![1, 2, 3]);
}

#[test]
fn a_panicking_fiber_returns_its_payload_and_others_keep_running() {
    fiberloop::run(|| {
        let steady = fiberloop::spawn(|| {
            let mut n = 0;
            for _ in 0..10 {
                fiberloop::yield_now();
                n += 1;
            }
            n
        });
        let bad = fiberloop::spawn(|| -> u32 {
            fiberloop::yield_now();
            panic!("boom (expected by the test)")
        });
        let err = bad.join().unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.panic_message(), Some("boom (expected by the test)"));
        assert!(err.to_string().contains("boom"));
        let payload = err.into_panic();
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"boom (expected by the test)")
        );
        assert_eq!(steady.join().unwrap(), 10);
    });
}

#[test]
fn a_panic_in_the_main_fiber_reaches_the_caller_of_run() {
    let caught = std::panic::catch_unwind(|| fiberloop::run(|| panic!("main failed (expected)")));
    let payload = caught.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"main failed (expected)")
    );
    // The thread is usable again.
    assert_eq!(fiberloop::run(|| 5), 5);
}

#[test]
fn dropping_a_handle_detaches_the_fiber() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    fiberloop::run(move || {
        let l2 = l.clone();
        drop(fiberloop::spawn(move || {
            fiberloop::sleep(Duration::from_millis(1));
            l2.borrow_mut().push("detached ran");
        }));
        fiberloop::sleep(Duration::from_millis(10));
        l.borrow_mut().push("main done");
    });
    assert_eq!(*log.borrow(), ["detached ran", "main done"]);
}

#[test]
fn spawned_fibers_run_in_spawn_order_before_the_spawner_resumes() {
    let order = fiberloop::run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let handles: Vec<_> = (0..5)
            .map(|i| {
                let log = log.clone();
                fiberloop::spawn(move || log.borrow_mut().push(i))
            })
            .collect();
        log.borrow_mut().push(100); // the spawner runs on until it blocks
        for h in handles {
            h.join().unwrap();
        }
        let v = log.borrow().clone();
        v
    });
    assert_eq!(order, vec![100, 0, 1, 2, 3, 4]);
}

#[test]
fn current_names_the_running_fiber() {
    fiberloop::run(|| {
        assert_eq!(fiberloop::current().name(), Some("main"));
        let h = fiberloop::Builder::new()
            .name("worker")
            .spawn(|| {
                (
                    fiberloop::current().id(),
                    fiberloop::current().name().map(String::from),
                )
            })
            .unwrap();
        let fiber = h.fiber();
        let (id, name) = h.join().unwrap();
        assert_eq!(id, fiber.id());
        assert_eq!(name.as_deref(), Some("worker"));
        assert_ne!(id, fiberloop::current().id());
    });
    assert!(fiberloop::try_current().is_none());
}

#[test]
fn a_fiber_can_be_joined_from_another_thread() {
    let (tx, rx) = std::sync::mpsc::channel();
    let joiner = std::thread::spawn(move || {
        let handle: fiberloop::JoinHandle<u64> = rx.recv().unwrap();
        handle.join().unwrap() // blocks this plain thread
    });
    fiberloop::run(move || {
        let h = fiberloop::spawn(|| {
            fiberloop::sleep(Duration::from_millis(20));
            7u64
        });
        tx.send(h).unwrap();
        // Keep the loop alive until the other thread has its answer.
        fiberloop::sleep(Duration::from_millis(40));
    });
    assert_eq!(joiner.join().unwrap(), 7);
}

#[test]
fn spawn_outside_a_loop_is_an_error() {
    let err = fiberloop::Builder::new().spawn(|| ()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains("no fiberloop event loop"), "{err}");
}

#[test]
fn many_fibers_spawn_and_join() {
    let sum = fiberloop::run(|| {
        let handles: Vec<_> = (0..10_000u64)
            .map(|i| fiberloop::spawn(move || i))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(sum, (0..10_000u64).sum());
}

thread_local! {
    static STARTED: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// Counts fibers whose body is running or suspended, and the peak.
struct Live;

impl Live {
    fn enter() -> Live {
        STARTED.with(|s| {
            let (now, peak) = s.get();
            s.set((now + 1, peak.max(now + 1)));
        });
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        STARTED.with(|s| s.set((s.get().0 - 1, s.get().1)));
    }
}

fn tree(num: u64, size: u64) -> u64 {
    let _live = Live::enter();
    if size == 1 {
        return num;
    }
    let div = size / 10;
    let children: Vec<_> = (0..10)
        .map(|i| fiberloop::spawn(move || tree(num + i * div, div)))
        .collect();
    children.into_iter().map(|c| c.join().unwrap()).sum()
}

#[test]
fn a_spawn_tree_runs_depth_first_so_few_fibers_hold_stacks() {
    // 11,111 fibers. Run breadth-first, the 1,111 inner ones would all be
    // started (each holding a stack) at once; depth-first, only one path is.
    let sum = fiberloop::run(|| tree(0, 10_000));
    assert_eq!(sum, 10_000 * 9_999 / 2);
    let peak = STARTED.with(|s| s.get().1);
    assert!(peak <= 10, "{peak} fibers were started at once");
}

#[test]
fn a_spawn_and_join_loop_does_not_starve_other_fibers() {
    fiberloop::run(|| {
        let turns = Rc::new(std::cell::Cell::new(0));
        let other = fiberloop::spawn({
            let turns = turns.clone();
            move || loop {
                turns.set(turns.get() + 1);
                fiberloop::yield_now();
            }
        });
        fiberloop::yield_now(); // let it start and go to the back of the queue
        let before = turns.get();
        for _ in 0..10_000 {
            fiberloop::spawn(|| ()).join().unwrap();
        }
        // Resumed joiners go first, but only BUDGET (61) inherited turns in a row.
        assert!(
            turns.get() - before >= 10_000 / 200,
            "the yielding fiber ran {} times",
            turns.get() - before
        );
        other.cancel();
    });
}
