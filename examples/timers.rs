//! The asyncio tutorial's timer example, retold with fibers and loop callbacks.
//!
//! Run: `cargo run --example timers`
//!
//! Two fibers print on their own delays; a `call_later` callback stops the loop
//! after 250 ms, so `run_forever` returns while they are still going (asyncio's
//! `loop.call_later(delay, loop.stop)`). A second callback is scheduled and then
//! cancelled: it never prints. Expected output (times vary by a millisecond):
//!
//! ```text
//!   60 ms  tick
//!  100 ms  tock
//!  120 ms  tick
//!  ...
//! stopped after 250 ms; the cancelled callback never ran
//! ```

use std::time::{Duration, Instant};

use fiberloop::EventLoop;

fn main() -> std::io::Result<()> {
    let event_loop = EventLoop::new()?;
    let handle = event_loop.handle();
    let start = Instant::now();

    for (word, every_ms) in [("tick", 60), ("tock", 100)] {
        fiberloop::spawn(move || loop {
            fiberloop::sleep(Duration::from_millis(every_ms));
            println!("{:>5} ms  {word}", start.elapsed().as_millis());
        });
    }

    let cancelled = handle.call_later(Duration::from_millis(150), || {
        println!("you will not see this")
    });
    cancelled.cancel();

    let stopper = handle.clone();
    handle.call_later(Duration::from_millis(250), move || stopper.stop());

    event_loop.run_forever();
    println!(
        "stopped after {} ms; the cancelled callback never ran",
        start.elapsed().as_millis()
    );
    // Dropping the loop cancels the two fibers, which are still sleeping.
    Ok(())
}
