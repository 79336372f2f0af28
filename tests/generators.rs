//! Generators: PEP 255 / 342 / 380 semantics.

mod util;

use std::cell::RefCell;
use std::rc::Rc;

use fiberloop::generator::{Generator, GeneratorError, GeneratorState};
use util::DropCounter;

#[test]
fn two_way_values_arrive_in_order() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let mut g = Generator::new(move |y, first: &'static str| {
        l.borrow_mut().push(format!("start {first}"));
        let a = y.suspend(1);
        l.borrow_mut().push(format!("got {a}"));
        let b = y.suspend(2);
        l.borrow_mut().push(format!("got {b}"));
        "done"
    });
    assert_eq!(g.resume("s").unwrap(), GeneratorState::Yielded(1));
    assert_eq!(g.resume("a").unwrap(), GeneratorState::Yielded(2));
    assert!(!g.is_complete());
    assert_eq!(g.resume("b").unwrap(), GeneratorState::Complete("done"));
    assert!(g.is_complete());
    assert!(matches!(g.resume("late"), Err(GeneratorError::Completed)));
    assert_eq!(*log.borrow(), ["start s", "got a", "got b"]);
}

#[test]
fn a_generator_without_input_is_an_iterator() {
    let countdown = Generator::new(|y, ()| {
        for i in (1..=5).rev() {
            y.suspend(i);
        }
    });
    assert_eq!(countdown.collect::<Vec<_>>(), [5, 4, 3, 2, 1]);
    let mut g = Generator::new(|y, ()| {
        y.suspend('x');
        42
    });
    assert_eq!(g.step().unwrap(), GeneratorState::Yielded('x'));
    assert_eq!(g.step().unwrap(), GeneratorState::Complete(42));
}

#[test]
fn yield_from_forwards_both_ways_and_returns_the_sub_value() {
    // The sub-generator sums what it is sent until it gets 0, echoing totals.
    fn summer() -> Generator<i32, i32, i32> {
        Generator::new(|y, first: i32| {
            let mut total = first;
            loop {
                let next = y.suspend(total);
                if next == 0 {
                    return total;
                }
                total += next;
            }
        })
    }
    let mut outer = Generator::new(|y, first: i32| {
        let mut sub = summer();
        let a = y.yield_from(&mut sub, first);
        let mut sub = summer();
        let b = y.yield_from(&mut sub, 100);
        format!("{a}+{b}")
    });
    let mut seen = vec![];
    let mut state = outer.resume(1).unwrap();
    for send in [2, 3, 0, 5, 0] {
        match state {
            GeneratorState::Yielded(v) => seen.push(v),
            GeneratorState::Complete(_) => unreachable!(),
        }
        state = outer.resume(send).unwrap();
    }
    assert_eq!(seen, [1, 3, 6, 100, 105]);
    assert_eq!(state, GeneratorState::Complete("6+105".to_string()));
}

#[test]
fn close_unwinds_the_body_and_runs_destructors() {
    let drops = DropCounter::default();
    let d = drops.clone();
    let mut g = Generator::new(move |y, ()| {
        let _token = d.token();
        loop {
            y.suspend(());
        }
    });
    g.resume(()).unwrap();
    assert_eq!(drops.count(), 0);
    g.close().unwrap();
    assert_eq!(drops.count(), 1);
    assert!(g.is_complete());
    g.close().unwrap(); // closing again does nothing
                        // Dropping an open generator closes it too.
    let d = drops.clone();
    let mut g = Generator::new(move |y, ()| {
        let _token = d.token();
        y.suspend(());
    });
    g.resume(()).unwrap();
    drop(g);
    assert_eq!(drops.count(), 2);
}

#[test]
fn closing_or_dropping_before_the_start_drops_the_closure() {
    let drops = DropCounter::default();
    let t = drops.token();
    let g: Generator<(), (), ()> = Generator::new(move |_, ()| drop(t));
    drop(g);
    assert_eq!(drops.count(), 1);
}

#[test]
fn throw_can_be_handled_by_the_body() {
    let mut g = Generator::new(|y, ()| {
        let mut errors = 0;
        loop {
            match y.try_suspend(errors) {
                Ok(()) => {}
                Err(e) => {
                    assert_eq!(e.to_string(), "bad input");
                    errors += 1;
                }
            }
        }
    });
    assert_eq!(g.resume(()).unwrap(), GeneratorState::Yielded(0));
    assert_eq!(g.throw("bad input").unwrap(), GeneratorState::Yielded(1));
    assert_eq!(g.resume(()).unwrap(), GeneratorState::Yielded(1));
}

#[test]
fn an_unhandled_throw_completes_the_generator_with_the_error() {
    let drops = DropCounter::default();
    let d = drops.clone();
    let mut g = Generator::new(move |y, ()| {
        let _token = d.token();
        y.suspend(1); // a plain suspend: a throw unwinds from here
        2
    });
    g.resume(()).unwrap();
    match g.throw(std::io::Error::other("network down")) {
        Err(GeneratorError::Thrown(e)) => assert_eq!(e.to_string(), "network down"),
        other => panic!("expected the thrown error back, got {other:?}"),
    }
    assert!(g.is_complete());
    assert_eq!(drops.count(), 1, "the body unwound");
    // Thrown into a generator that never started: the body never runs.
    let mut fresh: Generator<(), (), ()> = Generator::new(|_, ()| unreachable!());
    assert!(matches!(
        fresh.throw("early"),
        Err(GeneratorError::Thrown(_))
    ));
}

#[test]
fn a_throw_reaches_the_sub_generator_through_yield_from() {
    let mut outer = Generator::new(|y, ()| {
        let mut sub = Generator::new(|y, ()| match y.try_suspend("sub waiting") {
            Err(e) => format!("sub handled {e}"),
            Ok(()) => "sub resumed".to_string(),
        });
        y.yield_from(&mut sub, ())
    });
    assert_eq!(
        outer.resume(()).unwrap(),
        GeneratorState::Yielded("sub waiting")
    );
    assert_eq!(
        outer.throw("oops").unwrap(),
        GeneratorState::Complete("sub handled oops".to_string())
    );
}

#[test]
fn a_panic_reaches_the_caller_and_completes_the_generator() {
    let mut g = Generator::new(|y, ()| {
        y.suspend(());
        panic!("generator failure (expected by the test)");
    });
    g.resume(()).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.resume(())));
    assert_eq!(
        caught.unwrap_err().downcast_ref::<&str>(),
        Some(&"generator failure (expected by the test)")
    );
    assert!(g.is_complete());
    assert!(matches!(g.resume(()), Err(GeneratorError::Completed)));
}

#[test]
fn thousands_of_generators_come_and_go_without_leaking_stacks() {
    for round in 0..5_000u32 {
        let mut g = Generator::new(move |y, ()| {
            y.suspend(round);
            y.suspend(round + 1);
        });
        assert_eq!(g.resume(()).unwrap(), GeneratorState::Yielded(round));
        if round % 2 == 0 {
            drop(g); // abandoned mid-way: closed, stack back
        } else {
            while !g.is_complete() {
                g.resume(()).unwrap();
            }
        }
    }
    assert!(
        fiberloop::stack::idle_count() <= 4,
        "idle: {}",
        fiberloop::stack::idle_count()
    );
}

#[test]
fn generators_inside_fibers_and_blocking_calls_in_their_bodies() {
    fiberloop::run(|| {
        let mut g = Generator::new(|y, ()| {
            y.suspend(1);
            fiberloop::sleep(std::time::Duration::from_millis(1)); // not allowed here
            2
        });
        assert_eq!(g.resume(()).unwrap(), GeneratorState::Yielded(1));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.resume(())));
        let payload = caught.unwrap_err();
        let message = payload.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(message.contains("generator's body"), "{message}");
        // The fiber is unharmed and can still block.
        fiberloop::sleep(std::time::Duration::from_millis(1));
    });
}

#[test]
fn a_generator_stack_overflow_is_reported() {
    if util::in_child() {
        fn recurse(depth: u64) -> u64 {
            let pad = [depth; 64];
            std::hint::black_box(&pad);
            if depth == u64::MAX {
                return 0;
            }
            recurse(depth + 1) + pad[1]
        }
        let mut g: Generator<(), (), u64> =
            Generator::with_stack_size(16 * 1024, |_, ()| recurse(0)).unwrap();
        let _ = g.resume(());
        return;
    }
    let out = util::run_in_child("a_generator_stack_overflow_is_reported");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a generator has overflowed its stack of 16384 bytes"),
        "{stderr}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{stderr}");
}
