//! The `hook` feature and child processes: `std::process::Command` from a
//! fiber works (its pipes and its `poll` park only the fiber), with
//! `pre_exec` too (a `fork` child must not believe it is in a fiber).
#![cfg(feature = "hook")]

use std::cell::Cell;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

mod util;

#[test]
fn command_output_in_a_fiber_lets_the_others_run() {
    fiberloop::run(|| {
        let (ticks, stop) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
        let ticker = util::spawn_ticker(ticks.clone(), stop.clone());
        let before = ticks.get();
        let output = Command::new("sh")
            .args(["-c", "sleep 0.1; echo out; echo err >&2"])
            .output()
            .unwrap();
        assert!(output.status.success());
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
        // Blocked in the child's pipes, the loop could not have run the
        // ticker during the child's 100 ms sleep.
        assert!(ticks.get() > before, "the ticker ran while the child slept");
        stop.set(true);
        ticker.join().unwrap();
    });
}

#[test]
fn fork_and_exec_with_pre_exec_from_a_fiber() {
    fiberloop::run(|| {
        let mut command = Command::new("sh");
        command.args(["-c", "echo $0", "child"]);
        // SAFETY: the closure only calls async-signal-safe functions (none).
        unsafe {
            command.pre_exec(|| {
                // Runs in the fork child, on the fiber's stack copy: a
                // hooked call here must go straight to libc.
                std::thread::sleep(Duration::from_millis(1));
                Ok(())
            });
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        assert_eq!(output.stdout, b"child\n");
    });
}
