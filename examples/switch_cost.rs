//! What a context switch costs, measured live on your machine.
//!
//! Step 8 of docs/learn.md, a side trip: after the system calls, the switch.
//! Run: `cargo run --release --example switch_cost` (a debug build is many
//! times slower, and says so).
//!
//! Three switches, from cheapest to dearest:
//! 1. a bare corosensei coroutine: resume, then suspend back (two stack
//!    switches and nothing else);
//! 2. two fiberloop fibers yielding to each other (the switches plus the
//!    scheduler's ready queue);
//! 3. two OS threads handing a token back and forth over channels (the
//!    kernel's scheduler, twice per round).
//!
//! Each figure is the median of 5 runs of a timed loop.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult};

/// The median of 5 runs of `f` over `rounds` rounds, per round.
fn per_round(rounds: u32, f: impl Fn(u32) -> Duration) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| f(rounds).as_nanos() as f64 / f64::from(rounds))
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

fn coroutine_round(rounds: u32) -> Duration {
    let mut co = Coroutine::new(|y, ()| loop {
        y.suspend(());
    });
    let start = Instant::now();
    for _ in 0..rounds {
        let r = co.resume(());
        assert!(matches!(r, CoroutineResult::Yield(())));
    }
    start.elapsed()
}

fn fiber_round(rounds: u32) -> Duration {
    fiberloop::run(move || {
        let other = fiberloop::spawn(move || (0..rounds).for_each(|_| fiberloop::yield_now()));
        let start = Instant::now();
        (0..rounds).for_each(|_| fiberloop::yield_now());
        let took = start.elapsed();
        other.join().unwrap();
        took
    })
}

fn thread_round(rounds: u32) -> Duration {
    let (to_other, from_main) = mpsc::channel::<u32>();
    let (to_main, from_other) = mpsc::channel::<u32>();
    let other = std::thread::spawn(move || {
        for token in from_main {
            to_main.send(token).unwrap();
        }
    });
    let start = Instant::now();
    for token in 0..rounds {
        to_other.send(token).unwrap();
        from_other.recv().unwrap();
    }
    let took = start.elapsed();
    drop(to_other);
    other.join().unwrap();
    took
}

fn main() {
    if cfg!(debug_assertions) {
        println!("(a debug build: expect every figure to be several times higher)");
    }
    let coroutine = per_round(200_000, coroutine_round);
    let fibers = per_round(200_000, fiber_round);
    // A thread round is thousands of times slower: fewer rounds.
    let threads = per_round(2_000, thread_round);
    println!("bare coroutine, resume + suspend:      {coroutine:>9.1} ns per round");
    println!("two fibers yielding to each other:     {fibers:>9.1} ns per round");
    println!("two OS threads passing a token:        {threads:>9.1} ns per round");
    println!(
        "threads / fibers: {:.0}×. A fiber switch is a few loads and stores in user space; \
         a thread switch goes through the kernel.",
        threads / fibers
    );
}
