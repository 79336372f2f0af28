//! Coordination costs, with peers in the same harness: channel ping-pong
//! (fibers, the async face, tokio current_thread's mpsc, two OS threads on
//! std's mpsc; the compare demo's code), an uncontended mutex, and a
//! 1,000-sender fan-in.
//!
//! Run: `cargo bench --bench sync` (or `-- ping_pong`).

use std::time::Duration;

#[path = "../examples/compare/micro.rs"]
mod micro;
#[path = "../examples/compare/model.rs"]
mod model;

use criterion::{criterion_group, criterion_main, Criterion};
use fiberloop::sync;
use micro::Micro;
use model::Model;

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Channel ping-pong in every model that has channels, with the compare
/// demo's own code (`examples/compare/micro.rs`, shared with `benches/grid.rs`):
/// tokio runs inside a spawned task, as its servers do.
fn ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("channel_ping_pong");
    for model in [Model::Fibers, Model::Async, Model::TokioCt, Model::Threads] {
        group.bench_function(model.name(), |b| {
            b.iter_custom(|iters| micro::run(Micro::PingPong, model, iters).expect("supported"))
        });
    }
    group.finish();
}

fn mutex(c: &mut Criterion) {
    let mut group = c.benchmark_group("mutex_uncontended");
    group.bench_function("fiberloop", |b| {
        let m = sync::Mutex::new(0u64);
        b.iter(|| *m.lock().unwrap() += 1)
    });
    group.bench_function("std", |b| {
        let m = std::sync::Mutex::new(0u64);
        b.iter(|| *m.lock().unwrap() += 1)
    });
    group.bench_function("tokio_async", |b| {
        let rt = tokio_rt();
        let m = tokio::sync::Mutex::new(0u64);
        b.iter(|| rt.block_on(async { *m.lock().await += 1 }))
    });
    group.finish();
}

fn fan_in(c: &mut Criterion) {
    const SENDERS: u64 = 1000;
    const EACH: u64 = 10;
    let mut group = c.benchmark_group("fan_in_1000");
    group.sample_size(20);
    group.bench_function("fiberloop_fibers", |b| {
        b.iter(|| {
            fiberloop::run(|| {
                let (tx, rx) = sync::bounded::<u64>(64);
                for s in 0..SENDERS {
                    let tx = tx.clone();
                    fiberloop::spawn(move || {
                        (0..EACH).for_each(|i| tx.send(s * EACH + i).unwrap())
                    });
                }
                drop(tx);
                assert_eq!(rx.iter().count() as u64, SENDERS * EACH);
            })
        })
    });
    group.bench_function("tokio_current_thread", |b| {
        let rt = tokio_rt();
        b.iter(|| {
            rt.block_on(async {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(64);
                for s in 0..SENDERS {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        for i in 0..EACH {
                            tx.send(s * EACH + i).await.unwrap();
                        }
                    });
                }
                drop(tx);
                let mut n = 0;
                while rx.recv().await.is_some() {
                    n += 1;
                }
                assert_eq!(n, SENDERS * EACH);
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = ping_pong, mutex, fan_in
}
criterion_main!(benches);
