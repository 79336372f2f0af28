//! PEP 342, coroutines via enhanced generators: `yield` is an expression, and
//! the caller *sends* values in. A running average kept by a generator.
//!
//! Step 2 of docs/learn.md: after `gen_countdown`, before `gen_pipeline`.
//!
//! Run: `cargo run --example gen_averager`
//!
//! Python:
//!
//! ```python
//! def averager():
//!     total, count, average = 0.0, 0, None
//!     while True:
//!         term = yield average
//!         total += term; count += 1
//!         average = total / count
//!
//! avg = averager(); next(avg)          # prime it
//! avg.send(10); avg.send(30); avg.send(5)   # -> 10.0, 20.0, 15.0
//! ```
//!
//! In Rust the first `resume` both primes the generator and delivers the first
//! value (the body receives it as its second argument), so no separate
//! priming step exists. Output: `sent 10 -> average 10.0`, then `30 -> 20.0`,
//! `5 -> 15.0`, and a `close` that runs the body's destructor.

use fiberloop::generator::{Generator, GeneratorState};

struct Report(&'static str);

impl Drop for Report {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

fn main() {
    let mut averager = Generator::new(|y, first: f64| {
        let _report = Report("averager closed: its destructors ran");
        let (mut total, mut count) = (first, 1.0);
        loop {
            let term = y.suspend(total / count);
            total += term;
            count += 1.0;
        }
    });
    for term in [10.0, 30.0, 5.0] {
        if let Ok(GeneratorState::Yielded(average)) = averager.resume(term) {
            println!("sent {term} -> average {average:.1}");
        }
    }
    averager
        .close()
        .expect("the averager does not ignore close");
}
