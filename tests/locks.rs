//! Locks and signals, between fibers, async tasks and plain threads.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use fiberloop::sync::{Barrier, Condvar, Event, Mutex, OnceCell, RwLock, Semaphore, WaitGroup};

#[test]
fn mutex_excludes_and_a_waiter_is_not_starved() {
    fiberloop::run(|| {
        let m = Rc::new(Mutex::new(Vec::new()));
        // A greedy fiber that unlocks and relocks in a loop, yielding while it
        // holds the lock; a waiter must still get its turn (hand-off on unlock).
        let greedy = {
            let m = m.clone();
            fiberloop::spawn(move || {
                for i in 0..50 {
                    let mut g = m.lock().unwrap();
                    g.push(("greedy", i));
                    fiberloop::yield_now();
                }
            })
        };
        let waiter = {
            let m = m.clone();
            fiberloop::spawn(move || {
                let mut g = m.lock().unwrap();
                g.push(("waiter", 0));
            })
        };
        greedy.join().unwrap();
        waiter.join().unwrap();
        let log = m.lock().unwrap();
        let at = log.iter().position(|(who, _)| *who == "waiter").unwrap();
        assert!(
            at < 5,
            "the waiter got the lock early (at {at}), not after all 50 rounds"
        );
    });
}

#[test]
fn mutex_between_fibers_on_two_loops_and_a_plain_thread() {
    let counter = Arc::new(Mutex::new(0u64));
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let counter = counter.clone();
            std::thread::spawn(move || {
                fiberloop::run(move || {
                    let workers: Vec<_> = (0..4)
                        .map(|_| {
                            let counter = counter.clone();
                            fiberloop::spawn(move || {
                                for _ in 0..500 {
                                    let mut g = counter.lock().unwrap();
                                    let v = *g;
                                    fiberloop::yield_now(); // hold it across a switch
                                    *g = v + 1;
                                }
                            })
                        })
                        .collect();
                    workers.into_iter().for_each(|w| w.join().unwrap());
                })
            })
        })
        .collect();
    for _ in 0..1000 {
        *counter.lock().unwrap() += 1; // a plain thread, parking on contention
    }
    loops.into_iter().for_each(|l| l.join().unwrap());
    assert_eq!(*counter.lock().unwrap(), 2 * 4 * 500 + 1000);
}

#[test]
fn lock_timeout_and_async_lock() {
    fiberloop::run(|| {
        let m = Rc::new(Mutex::new(1));
        let held = m.lock().unwrap();
        assert!(m.try_lock().is_none());
        assert_eq!(
            m.lock_timeout(Duration::from_millis(5)).unwrap_err(),
            fiberloop::WaitError::TimedOut
        );
        let m2 = m.clone();
        let task = fiberloop::task::spawn(async move { *m2.lock_async().await + 1 });
        fiberloop::sleep(Duration::from_millis(2));
        drop(held);
        assert_eq!(fiberloop::wait(task).unwrap().unwrap(), 2);
    });
}

#[test]
fn condvar_waits_without_losing_notifications() {
    fiberloop::run(|| {
        let pair = Rc::new((Mutex::new(0), Condvar::new()));
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let pair = pair.clone();
                fiberloop::spawn(move || {
                    let (m, cv) = &*pair;
                    let g = cv.wait_while(m.lock().unwrap(), |n| *n == 0).unwrap();
                    *g
                })
            })
            .collect();
        fiberloop::yield_now();
        *pair.0.lock().unwrap() = 9;
        pair.1.notify_all();
        for c in consumers {
            assert_eq!(c.join().unwrap(), 9);
        }
        let (m, cv) = &*pair;
        let (g, timed_out) = cv
            .wait_timeout(m.lock().unwrap(), Duration::from_millis(5))
            .unwrap();
        assert!(timed_out);
        assert_eq!(*g, 9, "the lock is held again after a timeout");
    });
}

#[test]
fn rwlock_readers_share_and_a_waiting_writer_holds_new_readers_back() {
    fiberloop::run(|| {
        let lock = Rc::new(RwLock::new(0));
        let r1 = lock.read().unwrap();
        let r2 = lock.try_read().expect("readers share");
        assert!(lock.try_write().is_none());
        let writer = {
            let lock = lock.clone();
            fiberloop::spawn(move || *lock.write().unwrap() = 5)
        };
        fiberloop::yield_now();
        assert!(lock.try_read().is_none(), "a waiting writer comes first");
        drop((r1, r2));
        writer.join().unwrap();
        assert_eq!(*lock.read().unwrap(), 5);
    });
}

#[test]
fn semaphore_limits_concurrency() {
    fiberloop::run(|| {
        let sem = Rc::new(Semaphore::new(2));
        let inside = Rc::new(std::cell::Cell::new(0));
        let peak = Rc::new(std::cell::Cell::new(0));
        let workers: Vec<_> = (0..6)
            .map(|_| {
                let (sem, inside, peak) = (sem.clone(), inside.clone(), peak.clone());
                fiberloop::spawn(move || {
                    let _permit = sem.acquire().unwrap();
                    inside.set(inside.get() + 1);
                    peak.set(peak.get().max(inside.get()));
                    fiberloop::sleep(Duration::from_millis(2));
                    inside.set(inside.get() - 1);
                })
            })
            .collect();
        workers.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(peak.get(), 2);
        assert_eq!(sem.available_permits(), 2);
    });
}

#[test]
fn event_barrier_and_waitgroup() {
    fiberloop::run(|| {
        let event = Rc::new(Event::new());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let event = event.clone();
                fiberloop::spawn(move || event.wait().is_ok())
            })
            .collect();
        let task = {
            let event = event.clone();
            fiberloop::task::spawn(async move { event.wait_async().await })
        };
        fiberloop::yield_now();
        assert!(!event.is_set());
        event.set();
        assert!(waiters.into_iter().all(|w| w.join().unwrap()));
        fiberloop::wait(task).unwrap().unwrap();
        event.clear();
        assert_eq!(
            event.wait_timeout(Duration::from_millis(2)),
            Err(fiberloop::WaitError::TimedOut)
        );

        let barrier = Rc::new(Barrier::new(3));
        let parties: Vec<_> = (0..3)
            .map(|_| {
                let barrier = barrier.clone();
                fiberloop::spawn(move || {
                    (0..2)
                        .map(|_| barrier.wait().unwrap().is_leader())
                        .filter(|l| *l)
                        .count()
                })
            })
            .collect();
        let leaders: usize = parties.into_iter().map(|p| p.join().unwrap()).sum();
        assert_eq!(leaders, 2, "one leader per round, two rounds");

        let wg = WaitGroup::new();
        let done = Rc::new(std::cell::Cell::new(0));
        for _ in 0..5 {
            wg.add(1);
            let (wg, done) = (wg.clone(), done.clone());
            fiberloop::spawn(move || {
                fiberloop::sleep(Duration::from_millis(1));
                done.set(done.get() + 1);
                wg.done();
            });
        }
        wg.wait().unwrap();
        assert_eq!(done.get(), 5);
    });
}

#[test]
fn once_cell_runs_one_initializer_and_retries_after_a_panic() {
    fiberloop::run(|| {
        let cell = Rc::new(OnceCell::new());
        let runs = Rc::new(std::cell::Cell::new(0));
        let first = {
            let (cell, runs) = (cell.clone(), runs.clone());
            fiberloop::spawn(move || {
                let _ = cell.get_or_init(|| {
                    runs.set(runs.get() + 1);
                    fiberloop::sleep(Duration::from_millis(2));
                    panic!("the first initializer fails (expected by the test)");
                });
            })
        };
        let second = {
            let (cell, runs) = (cell.clone(), runs.clone());
            fiberloop::spawn(move || {
                *cell
                    .get_or_init(|| {
                        runs.set(runs.get() + 1);
                        7
                    })
                    .unwrap()
            })
        };
        assert!(first.join().is_err());
        assert_eq!(second.join().unwrap(), 7);
        assert_eq!(
            runs.get(),
            2,
            "the waiter ran its own after the first panicked"
        );
        assert_eq!(cell.set(8), Err(8));
    });
}
