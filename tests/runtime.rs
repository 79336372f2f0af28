//! The multi-loop runtime: running a main fiber, placing and stealing
//! unstarted work (started fibers never move), shutdown with fibers blocked
//! on every loop, panics isolated per fiber, and spawning from anywhere.

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fiberloop::{sync, Runtime, RuntimeHandle};
use util::DropCounter;

fn two_loops() -> Runtime {
    Runtime::builder().loops(2).build().expect("runtime")
}

#[test]
fn run_returns_the_main_fibers_value_and_names_the_threads() {
    let rt = Runtime::builder()
        .loops(2)
        .thread_name("worker")
        .build()
        .unwrap();
    let (name, index) = rt.run(|| {
        (
            thread::current().name().map(str::to_owned),
            RuntimeHandle::current_loop(),
        )
    });
    assert_eq!(name.as_deref(), Some("worker-0"));
    assert_eq!(index, Some(0));
    assert_eq!(rt.handle().loops(), 2);
}

#[test]
fn zero_loops_is_an_error() {
    let err = Runtime::builder().loops(0).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn spawned_work_runs_on_every_loop_and_started_fibers_never_move() {
    let rt = two_loops();
    let threads = rt.run(|| {
        let rt = RuntimeHandle::current();
        let fibers: Vec<_> = (0..400)
            .map(|_| {
                rt.spawn(|| {
                    let me = thread::current().id();
                    // Work that holds the loop's thread, so neither loop can
                    // run all of it before the other looks.
                    util::hold_thread(Duration::from_micros(100));
                    for i in 0..5 {
                        if i % 2 == 0 {
                            fiberloop::yield_now();
                        } else {
                            fiberloop::sleep(Duration::from_micros(200));
                        }
                        assert_eq!(thread::current().id(), me, "a started fiber moved");
                    }
                    me
                })
                .unwrap()
            })
            .collect();
        fibers
            .into_iter()
            .map(|f| f.join().unwrap())
            .collect::<std::collections::HashSet<_>>()
    });
    assert_eq!(threads.len(), 2, "both loops ran some of the work");
}

#[test]
fn an_idle_loop_steals_unstarted_tasks_from_a_busy_one() {
    let rt = two_loops();
    let handle = rt.handle().clone();
    let (busy, ran_on) = rt.run(move || {
        let busy = thread::current().id();
        // Loop 1 is held first, so placement queues work on both loops.
        let held = Arc::new(AtomicUsize::new(0));
        let h = held.clone();
        let blocker = handle
            .spawn_on(1, move || {
                h.store(1, Ordering::SeqCst);
                util::hold_thread(Duration::from_millis(100));
            })
            .unwrap();
        while held.load(Ordering::SeqCst) == 0 {
            util::hold_thread(Duration::from_millis(1));
        }
        let done = Arc::new(AtomicUsize::new(0));
        let fibers: Vec<_> = (0..200)
            .map(|_| {
                let done = done.clone();
                handle
                    .spawn(move || {
                        let me = thread::current().id();
                        fiberloop::yield_now();
                        assert_eq!(thread::current().id(), me, "a started fiber moved");
                        done.fetch_add(1, Ordering::SeqCst);
                        me
                    })
                    .unwrap()
            })
            .collect();
        // Hold this loop's thread until all have run: whatever was queued
        // here can only run if the other loop takes it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while done.load(Ordering::SeqCst) < 200 && Instant::now() < deadline {
            util::hold_thread(Duration::from_millis(1));
        }
        let ran_on: Vec<_> = fibers.into_iter().map(|f| f.join().unwrap()).collect();
        blocker.join().unwrap();
        (busy, ran_on)
    });
    assert!(
        ran_on.iter().all(|&t| t != busy),
        "every task ran on the loop that was free"
    );
    let stats = rt.handle().stats();
    assert!(stats[1].stolen > 0, "loop 1 stole: {stats:?}");
    assert_eq!(stats[0].stolen, 0, "{stats:?}");
}

#[test]
fn local_spawns_stay_on_their_loop() {
    let rt = two_loops();
    let same = rt.run(|| {
        let me = thread::current().id();
        let fibers: Vec<_> = (0..100)
            .map(|_| {
                fiberloop::spawn(move || {
                    fiberloop::yield_now();
                    thread::current().id() == me
                })
            })
            .collect();
        util::hold_thread(Duration::from_millis(50));
        fibers.into_iter().all(|f| f.join().unwrap())
    });
    assert!(same, "fiberloop::spawn never leaves the spawning loop");
}

#[test]
fn spawn_on_names_the_loop() {
    let rt = two_loops();
    for index in 0..2 {
        let on = rt
            .handle()
            .spawn_on(index, RuntimeHandle::current_loop)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(on, Some(index));
    }
    let err = rt.handle().spawn_on(2, || ()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn shutdown_unwinds_fibers_blocked_on_every_loop() {
    let drops = DropCounter::default();
    let rt = two_loops();
    let started = Arc::new(AtomicUsize::new(0));
    for index in 0..2 {
        let (d, s) = (drops.clone(), started.clone());
        rt.handle()
            .spawn_on(index, move || {
                let (_keep, rx) = sync::unbounded::<()>();
                let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let blocked = [
                    fiberloop::spawn({
                        let (t, s) = (d.token(), s.clone());
                        move || {
                            let _t = t;
                            s.fetch_add(1, Ordering::SeqCst);
                            let _ = rx.recv();
                        }
                    }),
                    fiberloop::spawn({
                        let (t, s) = (d.token(), s.clone());
                        move || {
                            let _t = t;
                            s.fetch_add(1, Ordering::SeqCst);
                            fiberloop::sleep(Duration::from_secs(3600));
                        }
                    }),
                    fiberloop::spawn({
                        let (t, s) = (d.token(), s.clone());
                        move || {
                            let _t = t;
                            s.fetch_add(1, Ordering::SeqCst);
                            let _ = listener.accept();
                        }
                    }),
                ];
                drop(blocked);
            })
            .unwrap();
    }
    // Each fiber counts itself just before it parks; the count reaches six
    // only once all have started, and the parks follow without a yield.
    let deadline = Instant::now() + Duration::from_secs(10);
    while started.load(Ordering::SeqCst) < 6 {
        assert!(Instant::now() < deadline, "the blocked fibers started");
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    rt.shutdown();
    assert!(start.elapsed() < Duration::from_secs(10), "shutdown ended");
    assert_eq!(drops.count(), 6, "every blocked fiber was unwound");
}

#[test]
fn a_panicking_fiber_on_one_loop_leaves_the_others_serving() {
    let rt = two_loops();
    let panicked = rt
        .handle()
        .spawn_on(0, || -> u32 { panic!("boom on loop 0") })
        .unwrap()
        .join()
        .unwrap_err();
    assert!(panicked.is_panic());
    for index in [1, 0] {
        let served = rt.handle().spawn_on(index, || 7).unwrap().join().unwrap();
        assert_eq!(served, 7, "loop {index} still serves");
    }
    assert_eq!(rt.run(|| 1 + 1), 2);
}

#[test]
fn spawning_from_a_plain_thread_and_from_another_loop_composes_with_channels() {
    let rt = two_loops();
    let (tx, rx) = sync::unbounded::<usize>();
    // From plain threads.
    let senders: Vec<_> = (0..4)
        .map(|i| {
            let (handle, tx) = (rt.handle().clone(), tx.clone());
            thread::spawn(move || {
                handle
                    .spawn(move || tx.send(i).unwrap())
                    .unwrap()
                    .join()
                    .unwrap();
            })
        })
        .collect();
    senders.into_iter().for_each(|t| t.join().unwrap());
    // From a fiber of a separate single loop, joining across loops.
    let handle = rt.handle().clone();
    let tx2 = tx.clone();
    let from_loop = fiberloop::run(move || {
        let fiber = handle.spawn(move || {
            tx2.send(100).unwrap();
            RuntimeHandle::current_loop()
        });
        fiber.unwrap().join().unwrap()
    });
    assert!(from_loop.is_some());
    drop(tx);
    let mut got: Vec<_> = std::iter::from_fn(|| rx.recv().ok()).collect();
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2, 3, 100]);
}

#[test]
fn async_tasks_are_placed_too() {
    let rt = two_loops();
    let n = rt.block_on(async {
        let rt = RuntimeHandle::current();
        let mut sum = 0;
        for i in 0..20usize {
            sum += rt.spawn_future(async move { i }).unwrap().await.unwrap();
        }
        sum
    });
    assert_eq!(n, 190);
}

#[test]
fn spawning_after_shutdown_fails_with_not_connected() {
    let rt = two_loops();
    let handle = rt.handle().clone();
    rt.shutdown();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let err = handle
        .spawn(move || r.fetch_add(1, Ordering::SeqCst))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert!(handle.spawn_on(0, || ()).is_err());
}

/// The CPUs the calling thread may run on.
fn affinity() -> usize {
    // SAFETY: `cpu_set_t` is plain bits; sched_getaffinity fills the one we
    // pass, of the size we pass, for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set),
            0
        );
        libc::CPU_COUNT(&set) as usize
    }
}

#[test]
fn pinned_loops_run_on_one_cpu_each() {
    let rt = Runtime::builder()
        .loops(2)
        .pin_threads(true)
        .build()
        .unwrap();
    for index in 0..2 {
        let cpus = rt
            .handle()
            .spawn_on(index, affinity)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(cpus, 1, "loop {index} is pinned");
    }
    let unpinned = two_loops();
    let cpus = unpinned
        .handle()
        .spawn_on(0, affinity)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(cpus, affinity(), "unpinned loops keep the process's CPUs");
}
