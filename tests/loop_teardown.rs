//! The end of a loop: fibers still alive are unwound, destructors run, nothing hangs.

mod util;

use std::time::Duration;

use util::DropCounter;

#[test]
fn fibers_alive_at_the_end_are_unwound_and_their_destructors_run() {
    let drops = DropCounter::default();
    let d = drops.clone();
    fiberloop::run(move || {
        // Suspended in sleep, in yield, and in a socket read.
        let t = d.token();
        fiberloop::spawn(move || {
            let _t = t;
            fiberloop::sleep(Duration::from_secs(3600));
        });
        let t = d.token();
        fiberloop::spawn(move || {
            let _t = t;
            loop {
                fiberloop::yield_now();
            }
        });
        let t = d.token();
        let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        fiberloop::spawn(move || {
            let _t = t;
            let (mut s, _) = listener.accept().unwrap();
            let _ = std::io::Read::read(&mut s, &mut [0; 8]); // the peer never writes
        });
        let t = d.token();
        fiberloop::spawn(move || {
            let _t = t;
            let mut s = fiberloop::net::TcpStream::connect(addr).unwrap();
            let _ = std::io::Read::read(&mut s, &mut [0; 8]);
        });
        fiberloop::sleep(Duration::from_millis(20));
        assert_eq!(d.count(), 0, "nothing dropped while the loop runs");
    });
    assert_eq!(
        drops.count(),
        4,
        "every fiber's locals were dropped at the end"
    );
}

#[test]
fn a_fiber_that_never_started_drops_its_closure() {
    let drops = DropCounter::default();
    let d = drops.clone();
    fiberloop::run(move || {
        let t = d.token();
        fiberloop::spawn(move || drop(t));
        // Return at once: the spawned fiber never ran.
    });
    assert_eq!(drops.count(), 1);
}

#[test]
fn blocking_in_a_destructor_during_cancellation_fails_instead_of_hanging() {
    struct SleepsOnDrop(DropCounter);
    impl Drop for SleepsOnDrop {
        fn drop(&mut self) {
            // Would block forever; while cancelling it returns at once.
            fiberloop::sleep(Duration::from_secs(3600));
            let _t = self.0.token();
        }
    }
    let drops = DropCounter::default();
    let d = drops.clone();
    fiberloop::run(move || {
        fiberloop::spawn(move || {
            let _guard = SleepsOnDrop(d);
            fiberloop::sleep(Duration::from_secs(3600));
        });
        fiberloop::yield_now();
    });
    assert_eq!(drops.count(), 1);
}

#[test]
fn join_of_a_cancelled_fiber_reports_cancellation() {
    let event_loop = fiberloop::EventLoop::new().unwrap();
    let stuck = event_loop
        .run_until_complete(|| fiberloop::spawn(|| fiberloop::sleep(Duration::from_secs(3600))));
    drop(event_loop); // cancels `stuck`
    let err = stuck.join().unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    let io: std::io::Error = err.into();
    assert!(io.get_ref().is_some_and(|e| e.is::<fiberloop::Cancelled>()));
}

#[test]
fn catching_the_unwind_does_not_keep_a_fiber_alive_forever() {
    let drops = DropCounter::default();
    let d = drops.clone();
    fiberloop::run(move || {
        fiberloop::spawn(move || {
            let _t = d.token();
            // A fiber that swallows every unwind and blocks again.
            loop {
                let _ = std::panic::catch_unwind(|| fiberloop::sleep(Duration::from_secs(3600)));
            }
        });
        fiberloop::yield_now();
    });
    // The loop gave up on it (its stack is leaked, with a message), and
    // returned; its locals could not be dropped.
    assert_eq!(drops.count(), 0);
}

#[test]
fn a_fiber_blocked_in_join_is_unwound_cleanly() {
    let drops = DropCounter::default();
    let d = drops.clone();
    fiberloop::run(move || {
        let t = d.token();
        fiberloop::spawn(move || {
            let _t = t;
            let inner = fiberloop::spawn(|| fiberloop::sleep(Duration::from_secs(3600)));
            inner.join() // the same-loop join path, parked
        });
        fiberloop::yield_now();
        fiberloop::yield_now();
        assert_eq!(d.count(), 0);
    });
    assert_eq!(drops.count(), 1);
}

#[test]
fn joining_from_a_fiber_of_another_loop_uses_the_thread_safe_path() {
    let (tx, rx) = std::sync::mpsc::channel();
    let other = std::thread::spawn(move || {
        fiberloop::run(move || {
            // (std::sync::mpsc blocks the whole thread; fine here: this loop has
            // nothing else to run until the handle arrives.)
            let handle: fiberloop::JoinHandle<&'static str> = rx.recv().unwrap();
            // A fiber of *this* loop waits for a fiber of the first loop.
            handle.join().unwrap()
        })
    });
    fiberloop::run(move || {
        let h = fiberloop::spawn(|| {
            fiberloop::sleep(Duration::from_millis(20));
            "from the first loop"
        });
        tx.send(h).unwrap();
        fiberloop::sleep(Duration::from_millis(50));
    });
    assert_eq!(other.join().unwrap(), "from the first loop");
}
