//! Micro workloads, one function per model: spawn + join of an empty task, a
//! yield round trip, and channel ping-pong. Each returns the time `iters`
//! operations took (setup excluded), so criterion's `iter_custom` and the
//! `compare` runner share one implementation.

use std::time::{Duration, Instant};

use crate::model::{self, Model};

/// A micro workload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Micro {
    /// Spawn a task that does nothing and wait for it.
    SpawnJoin,
    /// One task yields to the scheduler while another yields back.
    Yield,
    /// Send a value to another task over a channel and wait for it to come back.
    PingPong,
}

impl Micro {
    /// Every micro workload (the grid bench walks them).
    #[allow(dead_code)]
    pub const ALL: [Micro; 3] = [Micro::SpawnJoin, Micro::Yield, Micro::PingPong];

    /// The workload's name on the command line and in tables.
    #[allow(dead_code)] // not every includer names workloads
    pub fn name(self) -> &'static str {
        match self {
            Micro::SpawnJoin => "spawn_join",
            Micro::Yield => "yield",
            Micro::PingPong => "ping_pong",
        }
    }

    /// Whether `model` has this workload (the servers-only models have none).
    pub fn supports(self, model: Model) -> bool {
        self.unsupported(model).is_none()
    }

    /// Why `model` has no figure for this workload, if it has none.
    pub fn unsupported(self, model: Model) -> Option<&'static str> {
        if !model.has_tasks() {
            Some("a servers-only model has no tasks")
        } else if model.is_multi_loop() {
            Some("a multi-loop model: measured in skynet and the servers")
        } else {
            None
        }
    }
}

/// Runs `iters` operations of `work` in `model`; `None` if the model lacks it.
pub fn run(work: Micro, model: Model, iters: u64) -> Option<Duration> {
    if !work.supports(model) {
        return None;
    }
    Some(match work {
        Micro::SpawnJoin => spawn_join(model, iters),
        Micro::Yield => yield_round_trip(model, iters),
        Micro::PingPong => ping_pong(model, iters),
    })
}

fn timed(iters: u64, mut op: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        op();
    }
    start.elapsed()
}

fn spawn_join(model: Model, iters: u64) -> Duration {
    match model {
        Model::Fibers => {
            fiberloop::run(move || timed(iters, || fiberloop::spawn(|| ()).join().unwrap()))
        }
        Model::Async => fiberloop::block_on(async move {
            let start = Instant::now();
            for _ in 0..iters {
                fiberloop::task::spawn(async {}).await.unwrap();
            }
            start.elapsed()
        }),
        Model::TokioCt | Model::TokioMt => tokio_rt(model).block_on(async move {
            // Spawned, so that on the multi-thread runtime the spawner is a
            // worker (from `block_on`'s thread every join crosses threads).
            tokio::spawn(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    tokio::spawn(async {}).await.unwrap();
                }
                start.elapsed()
            })
            .await
            .unwrap()
        }),
        Model::Threads => timed(iters, || std::thread::spawn(|| ()).join().unwrap()),
        Model::May => in_may(move || timed(iters, || may::go!(|| ()).join().unwrap())),
        Model::FibersMt | Model::MayMt | Model::Callbacks | Model::Mio => {
            unreachable!("no spawn in {}", model.name())
        }
    }
}

/// A second task yields as often as the measured one, so each yield is a real
/// switch through the scheduler to another task and back; the figure is per
/// yield.
fn yield_round_trip(model: Model, iters: u64) -> Duration {
    match model {
        Model::Fibers => fiberloop::run(move || {
            let other = fiberloop::spawn(move || (0..=iters).for_each(|_| fiberloop::yield_now()));
            fiberloop::yield_now();
            let elapsed = timed(iters, fiberloop::yield_now);
            other.join().unwrap();
            elapsed / 2
        }),
        Model::Async => fiberloop::block_on(async move {
            let other = fiberloop::task::spawn(async move {
                for _ in 0..=iters {
                    fiberloop::task::yield_now().await;
                }
            });
            fiberloop::task::yield_now().await;
            let start = Instant::now();
            for _ in 0..iters {
                fiberloop::task::yield_now().await;
            }
            let elapsed = start.elapsed();
            other.await.unwrap();
            elapsed / 2
        }),
        Model::TokioCt | Model::TokioMt => tokio_rt(model).block_on(async move {
            // Spawned, so that on the multi-thread runtime both run on workers.
            tokio::spawn(async move {
                let other = tokio::spawn(async move {
                    for _ in 0..=iters {
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
            .await
            .unwrap()
        }),
        Model::Threads => {
            let other =
                std::thread::spawn(move || (0..=iters).for_each(|_| std::thread::yield_now()));
            let elapsed = timed(iters, std::thread::yield_now);
            other.join().unwrap();
            elapsed / 2
        }
        Model::May => in_may(move || {
            let other = may::go!(move || (0..=iters).for_each(|_| may::coroutine::yield_now()));
            may::coroutine::yield_now();
            let elapsed = timed(iters, may::coroutine::yield_now);
            other.join().unwrap();
            elapsed / 2
        }),
        Model::FibersMt | Model::MayMt | Model::Callbacks | Model::Mio => {
            unreachable!("no tasks in {}", model.name())
        }
    }
}

/// Round trips of a value through two capacity-1 channels and an echo task.
fn ping_pong(model: Model, iters: u64) -> Duration {
    use fiberloop::sync;
    match model {
        Model::Fibers => fiberloop::run(move || {
            let (ping_tx, ping_rx) = sync::bounded::<u64>(1);
            let (pong_tx, pong_rx) = sync::bounded::<u64>(1);
            let echo = fiberloop::spawn(move || {
                for v in ping_rx.iter() {
                    pong_tx.send(v).unwrap();
                }
            });
            let elapsed = timed(iters, || {
                ping_tx.send(1).unwrap();
                pong_rx.recv().unwrap();
            });
            drop(ping_tx);
            echo.join().unwrap();
            elapsed
        }),
        Model::Async => fiberloop::block_on(async move {
            let (ping_tx, ping_rx) = sync::bounded::<u64>(1);
            let (pong_tx, pong_rx) = sync::bounded::<u64>(1);
            let echo = fiberloop::task::spawn(async move {
                while let Ok(v) = ping_rx.recv_async().await {
                    pong_tx.send_async(v).await.unwrap();
                }
            });
            let start = Instant::now();
            for i in 0..iters {
                ping_tx.send_async(i).await.unwrap();
                pong_rx.recv_async().await.unwrap();
            }
            let elapsed = start.elapsed();
            drop(ping_tx);
            echo.await.unwrap();
            elapsed
        }),
        Model::TokioCt | Model::TokioMt => tokio_rt(model).block_on(async move {
            tokio::spawn(async move {
                let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
                let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
                let echo = tokio::spawn(async move {
                    while let Some(v) = ping_rx.recv().await {
                        pong_tx.send(v).await.unwrap();
                    }
                });
                let start = Instant::now();
                for i in 0..iters {
                    ping_tx.send(i).await.unwrap();
                    pong_rx.recv().await.unwrap();
                }
                let elapsed = start.elapsed();
                drop(ping_tx);
                echo.await.unwrap();
                elapsed
            })
            .await
            .unwrap()
        }),
        Model::Threads => {
            let (ping_tx, ping_rx) = std::sync::mpsc::sync_channel::<u64>(1);
            let (pong_tx, pong_rx) = std::sync::mpsc::sync_channel::<u64>(1);
            let echo = std::thread::spawn(move || {
                for v in ping_rx.iter() {
                    pong_tx.send(v).unwrap();
                }
            });
            let elapsed = timed(iters, || {
                ping_tx.send(1).unwrap();
                pong_rx.recv().unwrap();
            });
            drop(ping_tx);
            echo.join().unwrap();
            elapsed
        }
        Model::May => in_may(move || {
            let (ping_tx, ping_rx) = may::sync::mpsc::channel::<u64>();
            let (pong_tx, pong_rx) = may::sync::mpsc::channel::<u64>();
            let echo = may::go!(move || {
                for v in ping_rx.iter() {
                    pong_tx.send(v).unwrap();
                }
            });
            let elapsed = timed(iters, || {
                ping_tx.send(1).unwrap();
                pong_rx.recv().unwrap();
            });
            drop(ping_tx);
            echo.join().unwrap();
            elapsed
        }),
        Model::FibersMt | Model::MayMt | Model::Callbacks | Model::Mio => {
            unreachable!("no channels in {}", model.name())
        }
    }
}

fn tokio_rt(model: Model) -> tokio::runtime::Runtime {
    if model == Model::TokioMt {
        model::tokio_mt()
    } else {
        model::tokio_ct()
    }
}

/// Runs `f` in a `may` coroutine (may's primitives want to run inside one).
fn in_may<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    model::may_init(Model::May);
    may::go!(f).join().unwrap()
}
