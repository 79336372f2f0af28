//! The stall report: a loop idle past its quiet period with parked fibers
//! that nothing in the loop can wake says so (with the dump), and goes on:
//! here a plain thread wakes the fiber afterwards, and `run` returns.
//!
//! The report goes to stderr, so the case runs in a child process (this test
//! binary again: `util::run_in_child_with`).

use std::time::Duration;

mod util;
use util::in_child;

#[test]
fn child_waits_for_a_plain_thread() {
    if !in_child() {
        return;
    }
    let got = fiberloop::run(|| {
        let (tx, rx) = fiberloop::sync::bounded::<u32>(1);
        // A plain thread holds the sender; the loop cannot know it will send.
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(800));
            tx.send(42).unwrap();
        });
        let receiver = fiberloop::Builder::new()
            .name("receiver")
            .spawn(move || rx.recv().unwrap())
            .unwrap();
        let got = receiver.join().unwrap();
        sender.join().unwrap();
        got
    });
    assert_eq!(got, 42);
}

#[test]
fn an_idle_loop_with_unwakeable_fibers_reports_a_stall_and_goes_on() {
    if in_child() {
        return;
    }
    let envs = [("FIBERLOOP_STALL_MS", "200")];
    let (_, stderr) = util::run_in_child_ok_with("child_waits_for_a_plain_thread", &envs);
    assert!(stderr.contains("fiberloop: stall on loop"), "{stderr}");
    assert!(
        stderr.contains("idle for 0.2 s with 2 tasks parked"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Unless another thread wakes one"),
        "{stderr}"
    );
    assert!(stderr.contains("'receiver': parked for"), "{stderr}");
    assert!(stderr.contains("on recv from channel"), "{stderr}");
    assert_eq!(
        stderr.matches("fiberloop: stall").count(),
        1,
        "once per quiet spell: {stderr}"
    );
    assert!(!stderr.contains("fiberloop: deadlock"), "{stderr}");
}

#[test]
fn a_stall_report_can_be_turned_off() {
    if in_child() {
        return;
    }
    let envs = [("FIBERLOOP_STALL_MS", "0")];
    let (_, stderr) = util::run_in_child_ok_with("child_waits_for_a_plain_thread", &envs);
    assert!(!stderr.contains("fiberloop: stall"), "{stderr}");
}
