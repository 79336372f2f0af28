//! Channels: semantics, a model-based property test, and a million messages
//! between a fiber and a plain thread.

use std::time::Duration;

use fiberloop::sync::{self, RecvError, SendError, TryRecvError, TrySendError};
use proptest::prelude::*;

#[test]
fn closing_follows_crossbeam() {
    fiberloop::run(|| {
        let (tx, rx) = sync::bounded(4);
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        drop(tx);
        assert_eq!(rx.recv(), Ok(1), "buffered messages survive the senders");
        assert_eq!(rx.recv(), Ok(2));
        assert_eq!(rx.recv(), Err(RecvError::Disconnected));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));

        let (tx, rx) = sync::unbounded::<String>();
        drop(rx);
        match tx.send("back".to_string()) {
            Err(SendError::Disconnected(v)) => assert_eq!(v, "back", "the message comes back"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            tx.try_send("x".into()),
            Err(TrySendError::Disconnected(_))
        ));
    });
}

#[test]
fn a_bounded_channel_blocks_the_sender_when_full() {
    fiberloop::run(|| {
        let (tx, rx) = sync::bounded(2);
        assert!(tx.try_send(1).is_ok() && tx.try_send(2).is_ok());
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        let sender = fiberloop::spawn(move || {
            tx.send(3).unwrap(); // blocks until a slot frees
            "sent"
        });
        fiberloop::sleep(Duration::from_millis(5));
        assert!(!sender.is_finished(), "still blocked on the full channel");
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(sender.join().unwrap(), "sent");
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [2, 3]);
    });
}

#[test]
fn a_rendezvous_send_waits_for_a_receiver() {
    fiberloop::run(|| {
        let (tx, rx) = sync::bounded::<u32>(0);
        assert!(
            matches!(tx.try_send(1), Err(TrySendError::Full(1))),
            "nobody waits to receive"
        );
        let tx2 = tx.clone();
        let sender = fiberloop::spawn(move || tx2.send(7).map(|()| "handed over"));
        fiberloop::sleep(Duration::from_millis(5));
        assert!(!sender.is_finished(), "no receiver yet");
        assert_eq!(rx.recv(), Ok(7));
        assert_eq!(sender.join().unwrap(), Ok("handed over"));
        assert_eq!(rx.len(), 0, "a rendezvous channel holds nothing");
    });
}

#[test]
fn timeouts_give_the_message_back() {
    fiberloop::run(|| {
        let (tx, rx) = sync::bounded(1);
        tx.send(1).unwrap();
        match tx.send_timeout(2, Duration::from_millis(5)) {
            Err(SendError::TimedOut(v)) => assert_eq!(v, 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Ok(1));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(5)),
            Err(RecvError::TimedOut)
        );
    });
}

#[test]
fn the_async_faces_interoperate_with_fibers() {
    fiberloop::run(|| {
        let (tx, rx) = sync::bounded(1);
        let (back_tx, back_rx) = sync::unbounded();
        let task = fiberloop::task::spawn(async move {
            while let Ok(n) = rx.recv_async().await {
                back_tx.send_async(n * 2).await.unwrap();
            }
        });
        for i in 0..100 {
            tx.send(i).unwrap();
        }
        drop(tx);
        let doubled: Vec<i32> = back_rx.iter().collect();
        assert_eq!(doubled, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        fiberloop::wait(task).unwrap().unwrap();
    });
}

#[test]
fn a_million_messages_between_a_fiber_and_a_plain_thread_lose_no_wakeup() {
    const N: u64 = 1_000_000;
    let (to_thread, thread_rx) = sync::bounded::<u64>(16);
    let (to_fiber, fiber_rx) = sync::bounded::<u64>(16);
    let thread = std::thread::spawn(move || {
        // A plain thread: recv parks the thread, send wakes the loop.
        let mut sum = 0u64;
        for v in thread_rx.iter() {
            sum += v;
            if v % 1000 == 999 {
                to_fiber.send(v).unwrap();
            }
        }
        sum
    });
    let acks = fiberloop::run(move || {
        let acker = fiberloop::spawn(move || fiber_rx.iter().count());
        for v in 0..N {
            to_thread.send(v).unwrap();
        }
        drop(to_thread);
        acker.join().unwrap()
    });
    assert_eq!(thread.join().unwrap(), N * (N - 1) / 2);
    assert_eq!(acks as u64, N / 1000);
}

#[test]
fn many_producers_many_consumers() {
    fiberloop::run(|| {
        let (tx, rx) = sync::bounded(8);
        let producers: Vec<_> = (0..10u64)
            .map(|p| {
                let tx = tx.clone();
                fiberloop::spawn(move || (0..1000).for_each(|i| tx.send(p * 1000 + i).unwrap()))
            })
            .collect();
        drop(tx);
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                fiberloop::spawn(move || rx.iter().collect::<Vec<u64>>())
            })
            .collect();
        producers.into_iter().for_each(|p| p.join().unwrap());
        let mut all: Vec<u64> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..10_000).collect::<Vec<u64>>(),
            "every message exactly once"
        );
    });
}

/// One step of the random interleaving the property test runs.
#[derive(Debug, Clone)]
enum Step {
    /// Sender `i` (one fiber per sender, sending in order) sends its next message.
    Send(usize),
    /// A new fiber receives one message (or gives up after a while).
    Recv,
    /// Let the fibers run.
    Yield,
    /// Sender `i` finishes: after its queued messages, it drops its handle.
    Close(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3usize).prop_map(Step::Send),
        4 => Just(Step::Recv),
        2 => Just(Step::Yield),
        1 => (0..3usize).prop_map(Step::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Against a model queue: every message sent is received exactly once, in
    /// FIFO order per sender, and receivers see Disconnected only after every
    /// sender is gone and the buffer is drained.
    #[test]
    fn channels_behave_like_a_queue(capacity in 0..4usize, steps in prop::collection::vec(step(), 1..60)) {
        let outcome = fiberloop::run(move || {
            let (tx, rx) = sync::bounded::<(usize, u32)>(capacity);
            // Each sender is one fiber fed by a control channel, so its
            // messages are sent in order.
            let mut controls = Vec::new();
            let mut senders = Vec::new();
            for _ in 0..3 {
                let (ctl_tx, ctl_rx) = sync::unbounded::<(usize, u32)>();
                let tx = tx.clone();
                controls.push(Some(ctl_tx));
                senders.push(fiberloop::spawn(move || {
                    for m in ctl_rx.iter() {
                        if tx.send(m).is_err() {
                            break;
                        }
                    }
                }));
            }
            drop(tx);
            let received = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let mut next = [0u32; 3];
            let mut sent = Vec::new();
            let mut receivers = Vec::new();
            for s in steps {
                match s {
                    Step::Send(i) => {
                        if let Some(ctl) = &controls[i] {
                            let m = (i, next[i]);
                            next[i] += 1;
                            sent.push(m);
                            ctl.send(m).unwrap();
                        }
                    }
                    Step::Recv => {
                        let rx = rx.clone();
                        let received = received.clone();
                        receivers.push(fiberloop::spawn(move || {
                            if let Ok(m) = rx.recv_timeout(Duration::from_millis(50)) {
                                received.borrow_mut().push(m);
                            }
                        }));
                    }
                    Step::Yield => fiberloop::yield_now(),
                    Step::Close(i) => controls[i] = None,
                }
            }
            controls.clear();
            // Drain until every sender is done and gone: the drain ends on
            // Disconnected, never earlier.
            let drain = {
                let rx = rx.clone();
                let received = received.clone();
                fiberloop::spawn(move || rx.iter().for_each(|m| received.borrow_mut().push(m)))
            };
            senders.into_iter().for_each(|f| f.join().unwrap());
            receivers.into_iter().for_each(|f| f.join().unwrap());
            drain.join().unwrap();
            let disconnected = rx.recv() == Err(RecvError::Disconnected);
            let got = received.borrow().clone();
            (sent, got, disconnected)
        });
        let (sent, received, disconnected) = outcome;
        prop_assert!(disconnected);
        let mut a = sent.clone(); a.sort();
        let mut b = received.clone(); b.sort();
        prop_assert_eq!(a, b, "each message received exactly once");
        for sender in 0..3 {
            let order: Vec<u32> = received.iter().filter(|(s, _)| *s == sender).map(|(_, n)| *n).collect();
            let mut sorted = order.clone(); sorted.sort();
            prop_assert_eq!(order, sorted, "FIFO per sender");
        }
    }
}

/// The futures are `SendFuture`/`RecvFuture`; the old names, which shadowed
/// the `Send` trait, remain as deprecated aliases of the same types.
#[test]
#[allow(deprecated)]
fn the_old_future_names_are_aliases() {
    fiberloop::run(|| {
        let (tx, rx) = fiberloop::sync::unbounded::<u32>();
        let send: fiberloop::sync::Send<'_, u32> = tx.send_async(7);
        let recv: fiberloop::sync::Recv<'_, u32> = rx.recv_async();
        let send: fiberloop::sync::SendFuture<'_, u32> = send;
        let recv: fiberloop::sync::RecvFuture<'_, u32> = recv;
        let got = fiberloop::wait(async move {
            send.await.unwrap();
            recv.await
        });
        assert_eq!(got.unwrap(), Ok(7));
    });
}
