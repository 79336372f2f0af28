//! PEP 255, simple generators: a function that yields values one at a time and
//! keeps its place in between.
//!
//! Step 1 of docs/learn.md: first, before `gen_averager`.
//!
//! Run: `cargo run --example gen_countdown`
//!
//! Python:
//!
//! ```python
//! def countdown(n):
//!     print("starting")
//!     while n > 0:
//!         yield n
//!         n -= 1
//!     print("done")
//!
//! for i in countdown(3): print(i)
//! ```
//!
//! Output: `starting`, `3`, `2`, `1`, `done` (the prints interleave with the
//! loop: the body runs only when the next value is asked for).

use fiberloop::generator::Generator;

fn countdown(mut n: u32) -> Generator<(), u32, ()> {
    Generator::new(move |y, ()| {
        println!("starting");
        while n > 0 {
            y.suspend(n);
            n -= 1;
        }
        println!("done");
    })
}

fn main() {
    for i in countdown(3) {
        println!("{i}");
    }
}
