//! Loop metrics count what a scripted program did: spawns, finishes, local
//! and remote wakes, turns and polls, and they read the stacks in use.

use std::time::Duration;

#[test]
fn metrics_count_spawns_finishes_and_wakes() {
    fiberloop::run(|| {
        let before = fiberloop::handle().metrics();
        // Ten fibers that each park once on a channel and are woken once.
        let (tx, rx) = fiberloop::sync::bounded::<u32>(10);
        let rx = std::rc::Rc::new(rx);
        let fibers: Vec<_> = (0..10)
            .map(|_| {
                let rx = rx.clone();
                fiberloop::spawn(move || rx.recv().unwrap())
            })
            .collect();
        fiberloop::yield_now(); // all ten park in recv
        let parked = fiberloop::handle().metrics();
        assert_eq!(parked.tasks_spawned - before.tasks_spawned, 10);
        assert_eq!(parked.tasks_alive, before.tasks_alive + 10);
        assert!(parked.live_stacks >= 11, "{parked:?}");
        assert!(parked.stack_headroom > 0, "{parked:?}");
        for i in 0..10 {
            tx.send(i).unwrap(); // wakes one receiver each
        }
        let sum: u32 = fibers.into_iter().map(|f| f.join().unwrap()).sum();
        assert_eq!(sum, 45);
        let after = fiberloop::handle().metrics();
        assert_eq!(after.tasks_finished - before.tasks_finished, 10);
        assert_eq!(after.tasks_alive, before.tasks_alive);
        // Ten receivers woken by the sends, and main woken by the joins.
        assert!(after.wakes_local - before.wakes_local >= 10, "{after:?}");
        assert_eq!(after.wakes_remote, before.wakes_remote);
        assert!(after.busy <= after.age);
    });
}

#[test]
fn remote_wakes_and_sleeps_are_counted() {
    let event_loop = fiberloop::EventLoop::new().unwrap();
    let remote = event_loop.remote();
    let metrics = event_loop.run_until_complete(move || {
        let (tx, rx) = fiberloop::sync::bounded::<u8>(1);
        // A plain thread wakes the fiber: a remote wake.
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(1).unwrap();
        });
        assert_eq!(rx.recv().unwrap(), 1);
        sender.join().unwrap();
        fiberloop::sleep(Duration::from_millis(20)); // the loop sleeps in its poller
        let asked = std::thread::spawn(move || remote.metrics(Duration::from_secs(10)));
        let from_there = fiberloop::unblock(move || asked.join().unwrap())
            .unwrap()
            .unwrap();
        (fiberloop::handle().metrics(), from_there)
    });
    let (here, there) = metrics;
    assert!(here.wakes_remote >= 1, "{here:?}");
    assert!(here.turns >= 2, "it waited twice: {here:?}");
    assert!(here.polls_with_events + here.polls_empty >= 1, "{here:?}");
    assert!(here.busy < here.age, "it slept: {here:?}");
    assert!(there.tasks_alive >= 1, "{there:?}");
}
