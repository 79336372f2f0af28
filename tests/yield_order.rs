//! The exact rule of `yield_now`, for fibers and async tasks: the yielder
//! goes to the back of the ready queue, behind everything ready when it
//! yielded. Freshly spawned tasks that have not run yet are queued ahead of
//! older work; such turns run at most 61 in a row (the yielder's own turn
//! counts if it was one, as a new main fiber's first turn is), then the
//! oldest waiting item (here, the yielder) gets one.

use std::cell::Cell;
use std::rc::Rc;

/// How many of `n` fibers ran before the main fiber came back from one
/// yield; `warm`: the fibers have already run once (they yielded too).
fn ran_before_return(n: usize, warm: bool) -> usize {
    fiberloop::run(move || {
        let ran = Rc::new(Cell::new(0));
        let go = Rc::new(Cell::new(!warm));
        let fibers: Vec<_> = (0..n)
            .map(|_| {
                let (ran, go) = (ran.clone(), go.clone());
                fiberloop::spawn(move || {
                    while !go.get() {
                        fiberloop::yield_now();
                    }
                    ran.set(ran.get() + 1);
                })
            })
            .collect();
        if warm {
            fiberloop::yield_now(); // every fiber runs once and yields
            go.set(true);
        }
        fiberloop::yield_now();
        let seen = ran.get();
        fibers.into_iter().for_each(|f| f.join().unwrap());
        seen
    })
}

#[test]
fn a_yield_behind_fibers_that_had_yielded_waits_for_all_of_them() {
    assert_eq!(ran_before_return(200, true), 200);
}

#[test]
fn a_yield_behind_fresh_spawns_waits_for_at_most_61_of_them() {
    // main's first turn was one of the 61: 60 spawned fibers run, then main.
    assert_eq!(ran_before_return(200, false), 60);
    assert_eq!(
        ran_before_return(40, false),
        40,
        "fewer than the bound: all"
    );
}

#[test]
fn an_async_yield_follows_the_same_rule() {
    let seen = fiberloop::block_on(async {
        let ran = Rc::new(Cell::new(0));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let ran = ran.clone();
                fiberloop::task::spawn(async move { ran.set(ran.get() + 1) })
            })
            .collect();
        fiberloop::task::yield_now().await;
        let seen = ran.get();
        for task in tasks {
            task.await.unwrap();
        }
        seen
    });
    assert_eq!(seen, 60, "the main task's first turn counts, as a fiber's");
}
