//! Cancellation: JoinHandle::cancel unwinds the fiber at its next suspension
//! point, whatever its code does with errors, and the loop stays fair.

mod util;

use std::io::Read;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiberloop::sync::{self, Mutex, RecvError};
use util::DropCounter;

fn is_cancelled(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<fiberloop::Cancelled>())
}

#[test]
fn cancel_wakes_a_fiber_blocked_anywhere_and_its_destructors_run() {
    let drops = DropCounter::default();
    let d = drops.clone();
    fiberloop::run(move || {
        let (_tx, rx) = sync::unbounded::<u32>();
        let lock = Rc::new(Mutex::new(()));
        let held = lock.lock().unwrap();
        let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _peer = fiberloop::spawn(move || {
            listener.accept().map(|(s, _)| {
                fiberloop::sleep(Duration::from_secs(3600));
                drop(s);
            })
        });
        let forever = fiberloop::spawn(|| fiberloop::sleep(Duration::from_secs(3600)));

        let mut blocked = Vec::new();
        let t = d.token();
        blocked.push(fiberloop::spawn(move || {
            let _t = t;
            format!("recv returned: {:?}", rx.recv())
        }));
        let t = d.token();
        blocked.push(fiberloop::spawn(move || {
            let _t = t;
            fiberloop::sleep(Duration::from_secs(3600));
            "sleep returned".to_owned()
        }));
        let t = d.token();
        blocked.push(fiberloop::spawn(move || {
            let _t = t;
            let mut s = fiberloop::net::TcpStream::connect(addr).unwrap();
            format!("read returned: {:?}", s.read(&mut [0; 8]))
        }));
        let t = d.token();
        blocked.push(fiberloop::spawn(move || {
            let _t = t;
            format!("join returned: {:?}", forever.join())
        }));
        let t = d.token();
        let l = lock.clone();
        blocked.push(fiberloop::spawn(move || {
            let _t = t;
            format!("lock returned: {:?}", l.lock().map(|_| ()))
        }));

        fiberloop::sleep(Duration::from_millis(10));
        assert_eq!(d.count(), 0, "all blocked");
        for b in &blocked {
            b.cancel();
        }
        for b in blocked {
            let outcome = b.join();
            assert!(
                outcome.as_ref().is_err_and(|e| e.is_cancelled()),
                "a cancelled call must not return: {outcome:?}"
            );
        }
        assert_eq!(
            d.count(),
            5,
            "every cancelled fiber unwound its destructors"
        );
        drop(held);
        assert!(
            lock.try_lock().is_some(),
            "nobody holds the lock it was waiting for"
        );
    });
}

#[test]
fn a_fiber_cancelled_before_it_starts_never_runs() {
    fiberloop::run(|| {
        let ran = Rc::new(std::cell::Cell::new(false));
        let r = ran.clone();
        let h = fiberloop::spawn(move || r.set(true));
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        assert!(!ran.get());
    });
}

#[test]
fn cancelling_a_fiber_inside_a_scope_cancels_its_children_and_waits_for_them() {
    let drops = DropCounter::default();
    let d = drops.clone();
    fiberloop::run(move || {
        let parent = fiberloop::spawn(move || {
            let local = d.token();
            fiberloop::scope(|s| {
                for _ in 0..3 {
                    let local = &local;
                    let token = d.token();
                    s.spawn(move || {
                        let _t = token;
                        let _borrow = local; // borrows the parent's stack
                        let (_tx, rx) = sync::unbounded::<()>();
                        let _ = rx.recv(); // blocks until cancelled
                    });
                }
                // The parent itself blocks here until cancelled.
                let (_tx, rx) = sync::unbounded::<()>();
                rx.recv()
            })
        });
        fiberloop::sleep(Duration::from_millis(5));
        parent.cancel();
        assert!(parent.join().unwrap_err().is_cancelled());
    });
    assert_eq!(drops.count(), 4, "children and parent all unwound");
}

/// Runs `body` in a fiber, cancels it after it is well under way, and returns
/// how many times it got past its suspension point after the cancel.
fn turns_after_cancel(
    body: impl FnOnce(Rc<std::cell::Cell<bool>>, Rc<std::cell::Cell<u64>>) + 'static,
) -> u64 {
    fiberloop::run(move || {
        let cancelled = Rc::new(std::cell::Cell::new(false));
        let turns = Rc::new(std::cell::Cell::new(0u64));
        let (c, t) = (cancelled.clone(), turns.clone());
        let fiber = fiberloop::spawn(move || body(c, t));
        fiberloop::sleep(Duration::from_millis(20));
        cancelled.set(true);
        fiber.cancel();
        // Another fiber's sleep is served on time meanwhile (no starvation):
        // the loop must get back here, and the cancelled one must be gone.
        fiberloop::sleep(Duration::from_millis(20));
        assert!(fiber.is_finished(), "the cancelled fiber ended");
        assert!(fiber.join().unwrap_err().is_cancelled());
        turns.get()
    })
}

#[test]
fn a_cancelled_sleep_loop_ends_instead_of_spinning() {
    let after = turns_after_cancel(|cancelled, turns| loop {
        fiberloop::sleep(Duration::from_millis(1));
        if cancelled.get() {
            turns.set(turns.get() + 1);
        }
    });
    assert_eq!(after, 0, "sleep never returns once cancelled");
}

#[test]
fn a_cancelled_yield_loop_ends() {
    let after = turns_after_cancel(|cancelled, turns| loop {
        fiberloop::yield_now();
        if cancelled.get() {
            turns.set(turns.get() + 1);
        }
    });
    assert_eq!(after, 0);
}

#[test]
fn an_accept_loop_that_logs_and_continues_ends_when_cancelled() {
    let after = turns_after_cancel(|cancelled, turns| {
        let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        loop {
            // The echo server's loop: log the error, carry on.
            if let Err(e) = listener.accept() {
                eprintln!("accept: {e}");
            }
            if cancelled.get() {
                turns.set(turns.get() + 1);
            }
        }
    });
    assert_eq!(after, 0, "no error to swallow: the fiber unwinds");
}

#[test]
fn code_that_catches_the_unwind_is_unwound_again_and_stays_fair() {
    fiberloop::run(|| {
        let caught = Rc::new(std::cell::Cell::new(0));
        let c = caught.clone();
        let fiber = fiberloop::spawn(move || loop {
            let r = std::panic::catch_unwind(|| fiberloop::sleep(Duration::from_secs(3600)));
            if r.is_err() {
                c.set(c.get() + 1);
            }
        });
        fiberloop::sleep(Duration::from_millis(5));
        fiber.cancel();
        // Each catch is followed by another unwind, one per turn of the loop:
        // this fiber's own sleeps still complete meanwhile.
        for _ in 0..3 {
            fiberloop::sleep(Duration::from_millis(2));
        }
        assert!(caught.get() >= 3, "re-raised at every suspension point");
        assert!(
            !fiber.is_finished(),
            "a loop that catches everything goes on"
        );
    });
}

#[test]
fn a_blocking_call_in_a_destructor_of_a_cancelled_fiber_fails_at_once() {
    fiberloop::run(|| {
        let (tx, rx) = sync::unbounded::<&'static str>();
        let fiber = fiberloop::spawn(move || {
            struct Flush(fiberloop::sync::Sender<&'static str>);
            impl Drop for Flush {
                fn drop(&mut self) {
                    let (_keep, never) = sync::unbounded::<()>();
                    let start = Instant::now();
                    let waited = never.recv();
                    let socket = fiberloop::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                    let read = socket.recv(&mut [0; 4]).unwrap_err();
                    let quick = start.elapsed() < Duration::from_secs(5);
                    let verdict = match (waited, is_cancelled(&read), quick) {
                        (Err(RecvError::Cancelled), true, true) => "cancelled at once",
                        _ => "blocked",
                    };
                    self.0.send(verdict).unwrap();
                }
            }
            let _flush = Flush(tx);
            fiberloop::sleep(Duration::from_secs(3600));
        });
        fiberloop::sleep(Duration::from_millis(5));
        fiber.cancel();
        assert!(fiber.join().unwrap_err().is_cancelled());
        assert_eq!(rx.recv().unwrap(), "cancelled at once");
    });
}
