//! PEP 380, delegating to a subgenerator: `result = yield from sub` passes every
//! sent value down to `sub`, every yielded value up to the caller, and evaluates
//! to `sub`'s *return* value.
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
//! delegation, and the average comes back as the value of `yield_from`.
//! Expected output: `girls: mean 40.5 kg (4 values)`, then
//! `boys: mean 42.0 kg (4 values)`.

use fiberloop::generator::{Generator, GeneratorState};

/// Averages the values sent to it until it is sent `None`; returns the mean
/// and how many values it saw.
fn averager() -> Generator<Option<f64>, (), (f64, u32)> {
    Generator::new(|y, first: Option<f64>| {
        let (mut total, mut count) = (0.0, 0);
        let mut term = first;
        while let Some(value) = term {
            total += value;
            count += 1;
            term = y.suspend(());
        }
        (total / f64::from(count), count)
    })
}

/// Delegates everything to an averager and returns its result.
fn grouper() -> Generator<Option<f64>, (), (f64, u32)> {
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
        let mut g = grouper();
        for v in values {
            g.resume(Some(v)).expect("grouper is running");
        }
        if let Ok(GeneratorState::Complete((mean, count))) = g.resume(None) {
            println!("{group}: mean {mean:.1} kg ({count} values)");
        }
    }
}
