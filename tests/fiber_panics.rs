//! A panic belongs to its fiber: no other fiber sees it unwinding, the
//! teardown after a panicking main fiber is quiet, and the message names
//! the fiber.

mod util;

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Fiber B locks a std `Mutex` and unlocks it after a switch, while fiber A
/// panics and unwinds through a destructor that blocks: the mutex must not
/// come out poisoned (it would if B unlocked while A's unwinding made
/// `thread::panicking()` true).
#[test]
fn another_fibers_unwinding_never_poisons_a_std_mutex() {
    fiberloop::run(|| {
        let mutex = Arc::new(Mutex::new(0));
        let a = fiberloop::spawn(|| {
            struct SlowCleanup;
            impl Drop for SlowCleanup {
                fn drop(&mut self) {
                    // Blocking while unwinding: must not let B run now.
                    fiberloop::sleep(Duration::from_millis(20));
                    fiberloop::yield_now();
                }
            }
            let _cleanup = SlowCleanup;
            fiberloop::yield_now();
            panic!("A fails (expected)");
        });
        let m = mutex.clone();
        let b = fiberloop::spawn(move || {
            for _ in 0..50 {
                // Held across a switch: A may start unwinding meanwhile.
                let mut guard = m.lock().unwrap();
                *guard += 1;
                fiberloop::yield_now();
                drop(guard);
            }
        });
        assert!(a.join().unwrap_err().is_panic());
        b.join().unwrap();
        assert!(!mutex.is_poisoned(), "B saw A's unwinding");
        assert_eq!(*mutex.lock().unwrap(), 50);
    });
}

#[test]
fn a_panic_message_names_the_fiber() {
    if !util::in_child() {
        let (_, stderr) = util::run_in_child_ok("a_panic_message_names_the_fiber");
        assert!(
            stderr.contains("fiber #")
                && stderr.contains(" 'conn' panicked at tests/fiber_panics.rs"),
            "{stderr}"
        );
        assert!(stderr.contains("conn broke"), "{stderr}");
        // The line of the `.spawn(..)` call below.
        assert!(
            stderr.contains("'conn' was spawned at tests/fiber_panics.rs:68:14"),
            "{stderr}"
        );
        return;
    }
    fiberloop::run(|| {
        let conn = fiberloop::Builder::new()
            .name("conn")
            .spawn(|| panic!("conn broke"))
            .unwrap();
        assert!(conn.join().unwrap_err().is_panic());
    });
}

/// The main fiber panics while others are blocked in calls they `unwrap()`:
/// they are unwound quietly, and only the one panic is reported.
#[test]
fn teardown_after_a_panicking_main_fiber_is_quiet() {
    if !util::in_child() {
        let (_, stderr) = util::run_in_child_ok("teardown_after_a_panicking_main_fiber_is_quiet");
        assert_eq!(stderr.matches("panicked at").count(), 1, "{stderr}");
        assert!(stderr.contains("main gives up"), "{stderr}");
        return;
    }
    let outcome = std::panic::catch_unwind(|| {
        fiberloop::run(|| {
            let (_tx, rx) = fiberloop::sync::unbounded::<u32>();
            let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let rx2 = rx.clone();
            fiberloop::spawn(move || rx2.recv().unwrap());
            fiberloop::spawn(move || listener.accept().unwrap());
            fiberloop::spawn(|| fiberloop::sleep(Duration::from_secs(3600)));
            fiberloop::sleep(Duration::from_millis(5));
            panic!("main gives up");
        })
    });
    assert!(
        outcome.is_err(),
        "the main fiber's panic reaches run's caller"
    );
}
