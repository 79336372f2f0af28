//! Generators as a pipeline (David Beazley, "Generator Tricks for Systems
//! Programmers"): a source, a filter and a sink, like `cat | grep | wc`, with
//! one item in flight at a time and no intermediate lists.
//!
//! Step 3 of docs/learn.md: after `gen_averager`, before `gen_delegation`.
//!
//! Run: `cargo run --example gen_pipeline`
//!
//! The source yields lines; `grep` pulls from it and yields the matching ones;
//! the sink counts and prints them. Each stage is an ordinary loop, and each
//! says what it does, so the output shows one item in flight: every line goes
//! through `grep` to the sink before the source reads the next one (with lists,
//! all six `lines:` steps would come first). The output starts:
//!
//! ```text
//! lines: read "a fiber has a stack"
//!   grep: match, passed on
//!     sink: line 1: a fiber has a stack
//! lines: read "a future has a state machine"
//!   grep: no match, dropped
//! ```
//!
//! and ends with `3 of 6 lines matched`.

use fiberloop::generator::Generator;

/// Yields each line of `text`.
fn lines(text: &'static str) -> Generator<(), &'static str, ()> {
    Generator::new(move |y, ()| {
        for line in text.lines() {
            println!("lines: read {line:?}");
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
                println!("  grep: match, passed on");
                y.suspend(line);
            } else {
                println!("  grep: no match, dropped");
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
        println!("    sink: line {matched}: {line}");
    }
    println!("{matched} of {} lines matched", TEXT.lines().count());
}
