//! The cooperative-scheduling pitfall, shown: a plain blocking call in one
//! fiber holds the whole loop, so every other fiber waits with it.
//!
//! A ticker fiber wakes every 10 ms. Beside it a worker makes a 50 ms
//! blocking call, twice:
//! 1. `std::thread::sleep`, which blocks the loop's thread. The ticker does
//!    not run for 50 ms, and the blocking detector (on here at 20 ms) says
//!    on stderr which fiber holds the loop and where.
//! 2. The same call through `fiberloop::unblock`, which runs it on the
//!    loop's thread pool. The worker parks and the ticker keeps its beat.
//!
//! Built with `--features hook`, `std::thread::sleep` itself parks only the
//! calling fiber, so step 1 does not stall either (docs/hook.md).
//!
//! Step 12 of docs/learn.md: after `echo_protocol`, before `compare`.
//!
//! Run: `cargo run --example stall` (or `cargo run --features hook --example stall`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiberloop::EventLoop;

const TICK: Duration = Duration::from_millis(10);
const BLOCK: Duration = Duration::from_millis(50);

/// Runs a ticker beside `work`; returns how often it ticked while `work`
/// ran, and its longest gap between ticks.
fn beside_a_ticker(work: impl FnOnce() + 'static) -> (usize, Duration) {
    let ticks = Rc::new(RefCell::new(Vec::<Instant>::new()));
    let ticker = {
        let ticks = ticks.clone();
        fiberloop::Builder::new()
            .name("ticker")
            .spawn(move || loop {
                ticks.borrow_mut().push(Instant::now());
                fiberloop::sleep(TICK);
            })
            .expect("spawn the ticker")
    };
    fiberloop::sleep(3 * TICK); // let it find its beat
    let start = Instant::now();
    let worker = fiberloop::Builder::new()
        .name("worker")
        .spawn(work)
        .expect("spawn the worker");
    worker.join().expect("the worker finishes");
    let end = Instant::now();
    fiberloop::sleep(2 * TICK);
    ticker.cancel();
    let ticks = ticks.borrow();
    let during = ticks.iter().filter(|&&t| t > start && t < end).count();
    let longest = ticks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    (during, longest)
}

fn report(step: &str, (during, longest): (usize, Duration)) {
    println!("{step}");
    println!("   ticks while the worker blocked: {during}");
    println!("   longest gap between ticks: {} ms", longest.as_millis());
}

fn main() -> std::io::Result<()> {
    let event_loop = EventLoop::builder()
        .blocking_threshold(Some(Duration::from_millis(20)))
        .build()?;
    event_loop.run_until_complete(|| {
        println!(
            "a ticker fiber every {} ms; a worker blocks for {} ms",
            TICK.as_millis(),
            BLOCK.as_millis()
        );
        report(
            "1. std::thread::sleep in the worker:",
            beside_a_ticker(|| std::thread::sleep(BLOCK)),
        );
        if cfg!(feature = "hook") {
            println!("   (hook feature: the sleep parked only the worker)");
        } else {
            println!(
                "   the sleep held the loop: nothing else ran (see the blocking report on stderr)"
            );
        }
        report(
            "2. the same sleep through fiberloop::unblock:",
            beside_a_ticker(|| {
                fiberloop::unblock(|| std::thread::sleep(BLOCK)).expect("the pool runs it")
            }),
        );
        println!("   the worker parked while a pool thread slept; the ticker kept its beat");
    });
    // The detector sampled the hold while it lasted; it prints once it has
    // loaded the symbol tables, which takes a moment in a debug build.
    std::thread::sleep(Duration::from_secs(3));
    Ok(())
}
