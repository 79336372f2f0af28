//! A few fibers that sleep and print, interleaving, then join.
//!
//! Step 7 of docs/learn.md: after `fiber_scheduler`, before `echo_server`.
//!
//! Run: `cargo run --example hello`
//!
//! Each fiber is plain blocking code: `sleep` parks only that fiber, so the
//! three run interleaved on one thread and the whole program takes about as
//! long as the longest fiber (bob: 3 × 30 ms), not the sum.

use std::time::{Duration, Instant};

fn main() {
    let started = Instant::now();
    fiberloop::run(move || {
        let workers: Vec<_> = [("ann", 20), ("bob", 30), ("cy", 15)]
            .into_iter()
            .map(|(name, step_ms)| {
                fiberloop::Builder::new()
                    .name(name)
                    .spawn(move || {
                        for step in 1..=3 {
                            fiberloop::sleep(Duration::from_millis(step_ms));
                            let me = fiberloop::current();
                            println!(
                                "{:>4} ms  {} step {step}",
                                started.elapsed().as_millis(),
                                me.name().unwrap()
                            );
                        }
                        step_ms * 3
                    })
                    .expect("spawn")
            })
            .collect();
        let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        println!(
            "all joined after {} ms; the fibers slept {total} ms in all",
            started.elapsed().as_millis()
        );
    });
}
