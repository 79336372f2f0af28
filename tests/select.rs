//! Waiting for the first of several: `Select` with timeouts, `join_all`
//! and `select_first`.

use std::time::{Duration, Instant};

use fiberloop::sync::{self, RecvError, Select};

#[test]
fn select_picks_a_ready_branch_and_honours_the_timeout() {
    fiberloop::run(|| {
        let (tx_a, rx_a) = sync::unbounded::<u32>();
        let (tx_b, rx_b) = sync::bounded::<&str>(0);
        let delayed = fiberloop::spawn(move || {
            fiberloop::sleep(Duration::from_millis(5));
            tx_a.send(1).unwrap();
        });
        let got = Select::new()
            .recv(&rx_a, |m| format!("a {m:?}"))
            .recv(&rx_b, |m| format!("b {m:?}"))
            .wait()
            .unwrap();
        assert_eq!(got, "a Ok(1)");
        delayed.join().unwrap();

        // A send branch fires once a receiver waits on the rendezvous channel.
        let receiver = fiberloop::spawn(move || rx_b.recv());
        let (_keep, rx_idle) = sync::unbounded::<u32>();
        let sent = Select::new()
            .send(&tx_b, "hi", |r| r.is_ok())
            .recv(&rx_idle, |_| false)
            .wait()
            .unwrap();
        assert!(sent);
        assert_eq!(receiver.join().unwrap(), Ok("hi"));

        // A disconnected channel's recv branch fires at once (crossbeam's rule).
        let closed = Select::new().recv(&rx_a, |m| m).wait().unwrap();
        assert_eq!(closed, Err(RecvError::Disconnected));

        let (tx_c, rx_c) = sync::unbounded::<u32>();
        let start = Instant::now();
        let timed_out = Select::new()
            .recv(&rx_c, |_| "message")
            .timeout(Duration::from_millis(10), || "timeout")
            .wait()
            .unwrap();
        assert_eq!(timed_out, "timeout");
        assert!(start.elapsed() >= Duration::from_millis(10));
        tx_c.send(5).unwrap();
        assert_eq!(
            rx_c.recv(),
            Ok(5),
            "the select left no waiter behind to steal it"
        );

        let async_pick = fiberloop::wait(
            Select::new()
                .recv(&rx_idle, |_| 1)
                .timeout(Duration::from_millis(2), || 2)
                .wait_async(),
        );
        assert_eq!(async_pick, Ok(2));
    });
}

#[test]
fn join_all_and_select_first() {
    fiberloop::run(|| {
        let handles: Vec<_> = [30u64, 10, 20]
            .into_iter()
            .map(|ms| {
                fiberloop::spawn(move || {
                    fiberloop::sleep(Duration::from_millis(ms));
                    ms
                })
            })
            .collect();
        let (index, first, rest) = sync::select_first(handles).unwrap();
        assert_eq!((index, first.unwrap()), (1, 10));
        let rest: Vec<u64> = sync::join_all(rest)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rest, [30, 20], "results in the order given");
    });
}
