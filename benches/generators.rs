//! Generator costs: `resume` against an equivalent hand-written `Iterator`, and
//! creating a generator and running it to completion on a pooled stack.
//!
//! Run: `cargo bench --bench generators`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use fiberloop::generator::Generator;

/// The iterator equivalent of the counting generator below.
struct Counter(u64);

impl Iterator for Counter {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        self.0 += 1;
        Some(self.0)
    }
}

fn resume(c: &mut Criterion) {
    let mut group = c.benchmark_group("generator_resume");
    group.bench_function("generator", |b| {
        let mut g = Generator::new(|y, ()| {
            let mut n = 0u64;
            loop {
                n += 1;
                y.suspend(n);
            }
        });
        b.iter(|| black_box(g.resume(()).unwrap()))
    });
    group.bench_function("bare_corosensei", |b| {
        // The floor: a corosensei coroutine with no generator semantics.
        let mut co = corosensei::Coroutine::new(|y: &corosensei::Yielder<(), u64>, ()| {
            let mut n = 0u64;
            loop {
                n += 1;
                y.suspend(n);
            }
        });
        b.iter(|| black_box(co.resume(())))
    });
    group.bench_function("iterator", |b| {
        let mut it = black_box(Counter(0));
        b.iter(|| black_box(it.next()))
    });
    group.finish();
}

fn create_run(c: &mut Criterion) {
    let mut group = c.benchmark_group("generator_create_run");
    group.bench_function("pooled_stack", |b| {
        b.iter(|| {
            let mut g: Generator<(), (), u32> = Generator::new(|_, ()| black_box(7));
            black_box(g.resume(()).unwrap())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = resume, create_run
}
criterion_main!(benches);
