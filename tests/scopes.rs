//! Scopes: deadline scopes (`fiberloop::timeout`) and structured scopes
//! (`fiberloop::scope`, fibers that borrow from the caller's stack).

mod util;

use std::time::{Duration, Instant};

use std::rc::Rc;

use fiberloop::sync;
use util::DropCounter;

#[test]
fn timeout_scopes_nest_and_the_nearest_deadline_wins() {
    fiberloop::run(|| {
        let (_tx, rx) = sync::unbounded::<()>();
        let start = Instant::now();
        let outer = fiberloop::timeout(Duration::from_secs(10), || {
            let inner = fiberloop::timeout(Duration::from_millis(10), || rx.recv());
            assert!(inner.is_err(), "the inner deadline passed");
            assert!(start.elapsed() < Duration::from_secs(5));
            // Inside the outer scope only, a short wait succeeds.
            fiberloop::sleep(Duration::from_millis(1));
            "outer finished in time"
        });
        assert_eq!(outer, Ok("outer finished in time"));
        // Deadlines reach socket I/O too.
        let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let r = fiberloop::timeout(Duration::from_millis(5), || listener.accept().map(|_| ()));
        assert!(r.is_err());
    });
}

#[test]
fn timeout_scopes_work_on_plain_threads() {
    let (_tx, rx) = sync::unbounded::<()>();
    let r = fiberloop::timeout(Duration::from_millis(5), || rx.recv());
    assert!(r.is_err());
}

#[test]
fn scoped_fibers_borrow_and_are_all_joined() {
    fiberloop::run(|| {
        let mut totals = vec![0u64; 4];
        let inputs = [vec![1, 2, 3], vec![4, 5], vec![6], vec![]];
        fiberloop::scope(|s| {
            for (total, input) in totals.iter_mut().zip(&inputs) {
                s.spawn(move || {
                    for x in input {
                        fiberloop::yield_now();
                        *total += x;
                    }
                });
            }
            let h = s.spawn(|| inputs.len());
            assert_eq!(h.join().unwrap(), 4);
        });
        assert_eq!(totals, [6, 9, 6, 0]);
    });
}

#[test]
fn a_panic_in_a_scoped_fiber_propagates_after_the_others_finish() {
    fiberloop::run(|| {
        let finished = Rc::new(std::cell::Cell::new(false));
        let f = finished.clone();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fiberloop::scope(|s| {
                s.spawn(|| panic!("scoped failure (expected by the test)"));
                s.spawn(move || {
                    fiberloop::sleep(Duration::from_millis(5));
                    f.set(true);
                });
            })
        }));
        assert!(caught.is_err());
        assert!(
            finished.get(),
            "the other fiber finished before the panic propagated"
        );
        // A joined panic does not propagate.
        let r = fiberloop::scope(|s| s.spawn(|| panic!("joined (expected)")).join().is_err());
        assert!(r);
    });
}

#[test]
fn a_loop_ending_inside_a_scope_unwinds_the_children_before_the_parent() {
    let drops = DropCounter::default();
    let d = drops.clone();
    fiberloop::run(move || {
        fiberloop::spawn(move || {
            let shared = vec![1, 2, 3];
            let token = d.token();
            fiberloop::scope(|s| {
                for _ in 0..3 {
                    let shared = &shared;
                    let token = d.token();
                    s.spawn(move || {
                        struct UsesBorrow<'a>(&'a Vec<i32>, Option<util::DropToken>);
                        impl Drop for UsesBorrow<'_> {
                            fn drop(&mut self) {
                                // Runs while the loop closes: the borrow must still be valid.
                                assert_eq!(self.0.len(), 3);
                                drop(self.1.take());
                            }
                        }
                        let _guard = UsesBorrow(shared, Some(token));
                        fiberloop::sleep(Duration::from_secs(3600));
                    });
                }
                fiberloop::sleep(Duration::from_secs(3600));
            });
            drop(token);
        });
        fiberloop::sleep(Duration::from_millis(5));
        // Return: the loop closes with the scope and its children all blocked.
    });
    assert_eq!(drops.count(), 4, "children, then the parent, unwound");
}
