//! Micro-benchmarks of the fiber core, with tokio current_thread in the same
//! harness for the workloads both can run (a grid: variant × workload). The
//! spawn + join group also has the async-task variant of the same loop.
//!
//! Run: `cargo bench --bench core` (or add a filter, e.g. `-- spawn_join`).
//!
//! Each fiberloop measurement runs inside one fiber of one loop: criterion's
//! `iter_custom` hands us an iteration count, and the fiber times that many
//! operations itself, so loop start-up is not measured.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

/// Times `iters` runs of `op` inside a fiber on a fresh loop. Generic (not a
/// `fn()` pointer) so that `op` inlines into the timing loop as it would in
/// user code: where a stack switch happens relative to calls matters (see
/// docs/benchmarks.md).
fn in_fiber<F: Fn() + 'static>(iters: u64, op: F) -> Duration {
    fiberloop::run(move || {
        op(); // warm the stack pool and caches
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        start.elapsed()
    })
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn yield_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("yield");
    group.bench_function("fiberloop", |b| {
        b.iter_custom(|iters| {
            fiberloop::run(move || {
                // A second fiber yields too, so each yield is a real switch
                // through the scheduler to another fiber and back.
                let other = fiberloop::spawn(move || {
                    for _ in 0..iters + 1 {
                        fiberloop::yield_now();
                    }
                });
                fiberloop::yield_now();
                let start = Instant::now();
                for _ in 0..iters {
                    fiberloop::yield_now();
                }
                let elapsed = start.elapsed();
                other.join().unwrap();
                elapsed / 2 // two yields (ours and the other fiber's) per iteration
            })
        })
    });
    group.bench_function("tokio_current_thread", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let other = tokio::spawn(async move {
                    for _ in 0..iters + 1 {
                        tokio::task::yield_now().await;
                    }
                });
                tokio::task::yield_now().await;
                let start = Instant::now();
                for _ in 0..iters {
                    tokio::task::yield_now().await;
                }
                let elapsed = start.elapsed();
                other.await.unwrap();
                elapsed / 2
            })
        })
    });
    group.finish();
}

fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join");
    group.bench_function("fiberloop", |b| {
        b.iter_custom(|iters| in_fiber(iters, || fiberloop::spawn(|| ()).join().unwrap()))
    });
    group.bench_function("fiberloop_async", |b| {
        b.iter_custom(|iters| {
            fiberloop::block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    fiberloop::task::spawn(async {}).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("tokio_current_thread", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    tokio::spawn(async {}).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn timers(c: &mut Criterion) {
    let mut group = c.benchmark_group("timers");
    group.bench_function("sleep_zero", |b| {
        b.iter_custom(|iters| in_fiber(iters, || fiberloop::sleep(Duration::ZERO)))
    });
    group.bench_function("call_soon_dispatch", |b| {
        b.iter_custom(|iters| {
            let event_loop = fiberloop::EventLoop::new().unwrap();
            let handle = event_loop.handle();
            let counter = std::rc::Rc::new(std::cell::Cell::new(0u64));
            let start = Instant::now();
            for _ in 0..iters {
                let counter = counter.clone();
                handle.call_soon(move || counter.set(counter.get() + 1));
            }
            let h = handle.clone();
            handle.call_soon(move || h.stop());
            event_loop.run_forever();
            let elapsed = start.elapsed();
            assert_eq!(counter.get(), iters);
            elapsed
        })
    });
    group.finish();
}

fn short_timer(c: &mut Criterion) {
    // The short-timer path: insert, poll with a 1 ms (rounded up) timeout, fire,
    // wake. It measures the kernel's timer resolution more than our code, so it
    // gets few samples.
    let mut group = c.benchmark_group("short_timer");
    group.sample_size(10);
    group.bench_function("sleep_1us", |b| {
        b.iter_custom(|iters| in_fiber(iters, || fiberloop::sleep(Duration::from_micros(1))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = yield_round_trip, spawn_join, timers, short_timer
}
criterion_main!(benches);
