//! Generators as a pipeline (David Beazley, "Generator Tricks for Systems
//! Programmers"): a source, a filter and a sink, like `cat | grep | wc`, with
//! one item in flight at a time and no intermediate lists.
//!
//! Run: `cargo run --example gen_pipeline`
//!
//! The source yields lines; `grep` pulls from it and yields the matching ones;
//! the sink counts and prints them. Each stage is an ordinary loop. Expected:
//! the three lines that mention "fiber", then `3 of 6 lines matched`.

use fiberloop::generator::Generator;

/// Yields each line of `text`.
fn lines(text: &'static str) -> Generator<(), &'static str, ()> {
    Generator::new(move |y, ()| {
        for line in text.lines() {
            y.suspend(line);
        }
    })
}

/// Yields the lines of `source` that contain `pattern`.
fn grep(
    pattern: &'static str,
    source: Generator<(), &'static str, ()>,
) -> Generator<(), &'static str, ()> {
    Generator::new(move |y, ()| {
        for line in source {
            if line.contains(pattern) {
                y.suspend(line);
            }
        }
    })
}

const TEXT: &str = "a fiber has a stack\n\
                    a future has a state machine\n\
                    fibers block, futures await\n\
                    both need a loop\n\
                    the loop is one thread\n\
                    a fiber never moves";

fn main() {
    let mut matched = 0;
    for line in grep("fiber", lines(TEXT)) {
        matched += 1;
        println!("{line}");
    }
    println!("{matched} of {} lines matched", TEXT.lines().count());
}
