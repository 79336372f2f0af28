//! The micro workloads of the `compare` example as a criterion grid, model ×
//! workload, sharing the example's code: `cargo bench --bench grid`
//! (or `-- ping_pong/` for one row).

#[path = "../examples/compare/micro.rs"]
mod micro;
#[path = "../examples/compare/model.rs"]
mod model;

use criterion::{criterion_group, criterion_main, Criterion};
use micro::Micro;
use model::Model;

fn grid(c: &mut Criterion) {
    for work in Micro::ALL {
        let mut group = c.benchmark_group(work.name());
        for model in Model::ALL.into_iter().filter(|&m| work.supports(m)) {
            group.bench_function(model.name(), |b| {
                b.iter_custom(|iters| micro::run(work, model, iters).expect("supported"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, grid);
criterion_main!(benches);
