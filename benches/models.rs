//! The two models side by side, with tokio current_thread in the same harness:
//! {fiberloop fiber, fiberloop async, tokio} ping-ponging through a waker.
//! (Spawn + join of all three is in `benches/core.rs`.)
//!
//! Run: `cargo bench --bench models`.
//!
//! Ping-pong uses one runtime-agnostic primitive for every model (`Baton`, a
//! turn flag plus a waker per side), so the only thing that differs between the
//! rows is the model: a fiber parks on it with `fiberloop::wait`, a task awaits
//! it.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

/// Two parties taking turns: `pass(to)` hands the turn over and wakes `to`.
#[derive(Default)]
struct Baton {
    turn: Cell<usize>,
    wakers: RefCell<[Option<Waker>; 2]>,
}

impl Baton {
    fn pass(&self, to: usize) {
        self.turn.set(to);
        if let Some(w) = self.wakers.borrow_mut()[to].take() {
            w.wake();
        }
    }

    async fn wait_turn(&self, me: usize) {
        poll_fn(|cx| {
            if self.turn.get() == me {
                Poll::Ready(())
            } else {
                self.wakers.borrow_mut()[me] = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("models_ping_pong");
    group.bench_function("fiberloop_fiber", |b| {
        b.iter_custom(|iters| {
            fiberloop::run(move || {
                let baton = Rc::new(Baton::default());
                let other = baton.clone();
                let pong = fiberloop::spawn(move || {
                    for _ in 0..iters {
                        fiberloop::wait(other.wait_turn(1)).unwrap();
                        other.pass(0);
                    }
                });
                let start = Instant::now();
                for _ in 0..iters {
                    baton.pass(1);
                    fiberloop::wait(baton.wait_turn(0)).unwrap();
                }
                let elapsed = start.elapsed();
                pong.join().unwrap();
                elapsed
            })
        })
    });
    group.bench_function("fiberloop_async", |b| {
        b.iter_custom(|iters| {
            fiberloop::block_on(async move {
                let baton = Rc::new(Baton::default());
                let other = baton.clone();
                let pong = fiberloop::task::spawn(async move {
                    for _ in 0..iters {
                        other.wait_turn(1).await;
                        other.pass(0);
                    }
                });
                let start = Instant::now();
                for _ in 0..iters {
                    baton.pass(1);
                    baton.wait_turn(0).await;
                }
                let elapsed = start.elapsed();
                pong.await.unwrap();
                elapsed
            })
        })
    });
    group.bench_function("tokio_current_thread", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let baton = Rc::new(Baton::default());
                let other = baton.clone();
                let pong = tokio::task::spawn_local(async move {
                    for _ in 0..iters {
                        other.wait_turn(1).await;
                        other.pass(0);
                    }
                });
                let start = Instant::now();
                for _ in 0..iters {
                    baton.pass(1);
                    baton.wait_turn(0).await;
                }
                let elapsed = start.elapsed();
                pong.await.unwrap();
                elapsed
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = ping_pong
}
criterion_main!(benches);
