//! skynet: a tree of tasks, each node spawning ten children down to a million
//! leaves (1,111,111 tasks in all); each leaf returns its ordinal and parents
//! sum. Measures wall time and the memory a model needs to hold such a tree.
//!
//! Each run happens in a fresh child process (see `main.rs`), so peak RSS
//! belongs to one model alone.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::model::{self, Model};

/// Whether `model` can run a tree of a million tasks.
pub fn supports(model: Model) -> Option<&'static str> {
    match model {
        Model::Threads => Some("a million OS threads exceed the machine's thread limit"),
        Model::Callbacks | Model::Mio => Some("a servers-only model has no tasks"),
        _ => None,
    }
}

/// The expected answer for a tree with `leaves` leaves (a power of ten).
pub fn answer(leaves: u64) -> u64 {
    leaves * (leaves - 1) / 2
}

/// Builds and sums the tree in `model`; returns the sum and the wall time.
pub fn run(model: Model, leaves: u64) -> (u64, Duration) {
    let start = Instant::now();
    let sum = match model {
        Model::Fibers => fiberloop::run(move || fiber(0, leaves)),
        Model::FibersMt => model::fibers_mt().run(move || {
            // Spawned through the runtime, so that idle loops may take the
            // unstarted children.
            fiber_mt(&fiberloop::RuntimeHandle::current(), 0, leaves)
        }),
        Model::Async => fiberloop::block_on(task(0, leaves)),
        Model::TokioCt => model::tokio_ct().block_on(tokio_task(0, leaves)),
        Model::TokioMt => model::tokio_mt().block_on(async move {
            // On a worker, as a server's tasks are.
            tokio::spawn(tokio_task(0, leaves)).await.unwrap()
        }),
        Model::May | Model::MayMt => {
            model::may_init(model);
            may::go!(move || coroutine(0, leaves)).join().unwrap()
        }
        Model::Threads | Model::Callbacks | Model::Mio => {
            unreachable!("skynet::supports said no")
        }
    };
    (sum, start.elapsed())
}

fn fiber(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let div = size / 10;
    let children: Vec<_> = (0..10)
        .map(|i| fiberloop::spawn(move || fiber(num + i * div, div)))
        .collect();
    children.into_iter().map(|c| c.join().unwrap()).sum()
}

fn fiber_mt(rt: &fiberloop::RuntimeHandle, num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let div = size / 10;
    let children: Vec<_> = (0..10)
        .map(|i| {
            let rt2 = rt.clone();
            rt.spawn(move || fiber_mt(&rt2, num + i * div, div))
                .expect("the runtime is up")
        })
        .collect();
    children.into_iter().map(|c| c.join().unwrap()).sum()
}

/// Recursion in async code needs a boxed future at every level.
fn task(num: u64, size: u64) -> Pin<Box<dyn Future<Output = u64>>> {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let div = size / 10;
        let children: Vec<_> = (0..10)
            .map(|i| fiberloop::task::spawn(task(num + i * div, div)))
            .collect();
        let mut sum = 0;
        for child in children {
            sum += child.await.unwrap();
        }
        sum
    })
}

fn tokio_task(num: u64, size: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let div = size / 10;
        let children: Vec<_> = (0..10)
            .map(|i| tokio::spawn(tokio_task(num + i * div, div)))
            .collect();
        let mut sum = 0;
        for child in children {
            sum += child.await.unwrap();
        }
        sum
    })
}

fn coroutine(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let div = size / 10;
    let children: Vec<_> = (0..10)
        .map(|i| may::go!(move || coroutine(num + i * div, div)))
        .collect();
    children.into_iter().map(|c| c.join().unwrap()).sum()
}
