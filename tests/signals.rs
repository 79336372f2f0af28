//! Signals reach fibers and tasks through the loop; deliveries wait, in
//! order, for a receiver. Each test uses its own signal (they are process-wide).

use std::io::ErrorKind;

use fiberloop::signal::{Signals, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH};

fn send(signo: i32) {
    // SAFETY: kill(2) on our own pid with a signal a listener catches.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signo) }, 0);
}

#[test]
fn a_fiber_receives_a_signal_while_others_run() {
    fiberloop::run(|| {
        let signals = Signals::new(&[SIGUSR1]).unwrap();
        let waiter = fiberloop::spawn(move || signals.recv().unwrap());
        fiberloop::yield_now(); // the waiter is parked in recv now
        send(SIGUSR1);
        assert_eq!(waiter.join().unwrap(), SIGUSR1);
    });
}

#[test]
fn deliveries_with_no_one_waiting_are_queued_not_lost() {
    fiberloop::run(|| {
        let signals = Signals::new(&[SIGHUP, SIGWINCH]).unwrap();
        send(SIGHUP);
        send(SIGWINCH);
        // Nobody has called recv yet; both deliveries wait in the pipe. (The
        // kernel picks the order between two pending signals, and merges a
        // standard signal sent twice before delivery: so, two kinds here.)
        fiberloop::sleep(std::time::Duration::from_millis(5));
        let mut got: Vec<i32> = (0..2).map(|_| signals.recv().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [SIGHUP, SIGWINCH]);
        assert_eq!(signals.try_recv().unwrap(), None);
    });
}

#[test]
fn the_async_face_and_a_second_listener_see_the_same_delivery() {
    fiberloop::block_on(async {
        let (first, second) = (
            Signals::new(&[SIGUSR2]).unwrap(),
            Signals::new(&[SIGUSR2]).unwrap(),
        );
        send(SIGUSR2);
        assert_eq!(first.recv_async().await.unwrap(), SIGUSR2);
        assert_eq!(second.recv_async().await.unwrap(), SIGUSR2);
    });
}

#[test]
fn uncatchable_or_fault_signals_are_refused() {
    for signo in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, 99] {
        let err = Signals::new(&[signo]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "signal {signo}");
    }
    assert_eq!(
        Signals::new(&[]).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}
