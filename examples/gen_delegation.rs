//! PEP 380, delegating to a subgenerator: `result = yield from sub` passes every
//! sent value down to `sub`, every yielded value up to the caller, and evaluates
//! to `sub`'s *return* value.
//!
//! Step 4 of docs/learn.md: after `gen_pipeline`, before `gen_scheduler`.
//!
//! Run: `cargo run --example gen_delegation`
//!
//! Python (from PEP 380's discussion and "Fluent Python"):
//!
//! ```python
//! def averager():                     # a subgenerator with a return value
//!     total, count = 0.0, 0
//!     while True:
//!         term = yield
//!         if term is None: break
//!         total += term; count += 1
//!     return total / count
//!
//! def grouper(results, key):          # the delegating generator
//!     results[key] = yield from averager()
//! ```
//!
//! The caller talks only to `grouper`; the values reach `averager` through the
//! delegation, each running mean comes back up through it, and the final mean
//! comes back as the value of `yield_from`. An error thrown into `grouper`
//! goes down to `averager` too, which catches it (PEP 342's `throw`) and
//! carries on.
//!
//! Each line says who prints it. The start of the output:
//!
//! ```text
//! girls
//!   caller:   send 40.9 to grouper
//!   averager: got 40.9 (1 so far)
//!   caller:   grouper yielded the running mean 40.90
//! ```
//!
//! It ends with `girls: mean 40.5 kg (4 values)` and
//! `boys: mean 42.0 kg (4 values)`: the boys' glitch was thrown in and
//! dropped without changing the mean.

use fiberloop::generator::{Generator, GeneratorState};

/// Averages the values sent to it until it is sent `None`, yielding the
/// running mean after each; returns the mean and how many values it saw. An
/// error thrown in is reported and skipped.
fn averager() -> Generator<Option<f64>, f64, (f64, u32)> {
    Generator::new(|y, first: Option<f64>| {
        let (mut total, mut count) = (0.0, 0);
        let mut term = first;
        while let Some(value) = term {
            total += value;
            count += 1;
            println!("  averager: got {value} ({count} so far)");
            let mean = total / f64::from(count);
            term = loop {
                match y.try_suspend(mean) {
                    Ok(next) => break next,
                    Err(thrown) => {
                        println!("  averager: caught the thrown error \"{thrown}\", skipped it");
                    }
                }
            };
        }
        (total / f64::from(count), count)
    })
}

/// Delegates everything to an averager and returns its result.
fn grouper() -> Generator<Option<f64>, f64, (f64, u32)> {
    Generator::new(|y, first| {
        let mut sub = averager();
        y.yield_from(&mut sub, first)
    })
}

fn main() {
    let data = [
        ("girls", [40.9, 38.5, 44.3, 38.3]),
        ("boys", [39.0, 40.8, 43.2, 45.0]),
    ];
    for (group, values) in data {
        println!("{group}");
        let mut g = grouper();
        for (i, v) in values.into_iter().enumerate() {
            println!("  caller:   send {v} to grouper");
            if let Ok(GeneratorState::Yielded(mean)) = g.resume(Some(v)) {
                println!("  caller:   grouper yielded the running mean {mean:.2}");
            }
            if group == "boys" && i == 1 {
                println!("  caller:   throw \"scale glitch\" into grouper");
                if let Ok(GeneratorState::Yielded(mean)) = g.throw("scale glitch") {
                    println!("  caller:   grouper yielded {mean:.2} again");
                }
            }
        }
        println!("  caller:   send None: the group is done");
        if let Ok(GeneratorState::Complete((mean, count))) = g.resume(None) {
            println!("{group}: mean {mean:.1} kg ({count} values)");
        }
    }
}
