//! Micro-benchmarks of the fiber core, with tokio current_thread in the same
//! harness for the workloads both can run (yield and spawn + join, with the
//! compare demo's code; tokio runs inside a spawned task, as its servers do),
//! and fiberloop's timers.
//!
//! Run: `cargo bench --bench core` (or add a filter, e.g. `-- spawn_join`).
//!
//! Each fiberloop measurement runs inside one fiber of one loop: criterion's
//! `iter_custom` hands us an iteration count, and the fiber times that many
//! operations itself, so loop start-up is not measured.

use std::time::{Duration, Instant};

#[path = "../examples/compare/micro.rs"]
mod micro;
#[path = "../examples/compare/model.rs"]
mod model;

use criterion::{criterion_group, criterion_main, Criterion};
use micro::Micro;
use model::Model;

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

/// The scheduling micro workloads (yield, spawn + join) in fiberloop's two
/// models and tokio current_thread, with the compare demo's own code
/// (`examples/compare/micro.rs`, shared with `benches/grid.rs`, which runs
/// every model).
fn micro_group(c: &mut Criterion, work: Micro) {
    let mut group = c.benchmark_group(work.name());
    for model in [Model::Fibers, Model::Async, Model::TokioCt] {
        group.bench_function(model.name(), |b| {
            b.iter_custom(|iters| micro::run(work, model, iters).expect("supported"))
        });
    }
    group.finish();
}

fn yield_round_trip(c: &mut Criterion) {
    micro_group(c, Micro::Yield);
}

fn spawn_join(c: &mut Criterion) {
    micro_group(c, Micro::SpawnJoin);
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
