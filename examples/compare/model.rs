//! The models under comparison, and how each one's runtime is built.

use std::sync::Once;

/// One way of running concurrent work.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Model {
    /// fiberloop's stackful fibers, blocking-style code.
    Fibers,
    /// fiberloop's multi-loop runtime: as many loops as tokio-mt has workers.
    FibersMt,
    /// fiberloop's async tasks, on the same loop.
    Async,
    /// tokio's current-thread runtime.
    TokioCt,
    /// tokio's multi-thread runtime (two workers).
    TokioMt,
    /// One OS thread per task, std's blocking APIs.
    Threads,
    /// `may`: stackful coroutines on a work-stealing scheduler (one worker here).
    May,
    /// `may` with as many workers as tokio-mt.
    MayMt,
    /// fiberloop's transports and protocols (PEP 3156 callbacks): servers only.
    Callbacks,
    /// A hand-written single-threaded mio loop: what the syscalls alone cost.
    Mio,
}

impl Model {
    /// Every model, in table order.
    pub const ALL: [Model; 10] = [
        Model::Fibers,
        Model::FibersMt,
        Model::Async,
        Model::TokioCt,
        Model::TokioMt,
        Model::Threads,
        Model::May,
        Model::MayMt,
        Model::Callbacks,
        Model::Mio,
    ];

    /// The short name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Model::Fibers => "fibers",
            Model::FibersMt => "fibers-mt",
            Model::Async => "async",
            Model::TokioCt => "tokio-ct",
            Model::TokioMt => "tokio-mt",
            Model::Threads => "threads",
            Model::May => "may",
            Model::MayMt => "may-mt",
            Model::Callbacks => "callbacks",
            Model::Mio => "mio",
        }
    }

    /// Whether the model has tasks to spawn (the callback style and the mio
    /// floor only serve connections).
    pub fn has_tasks(self) -> bool {
        !matches!(self, Model::Callbacks | Model::Mio)
    }

    /// Whether the model runs several threads of its own (the micro
    /// workloads measure one scheduler's switch costs, so they skip these
    /// models, all but tokio-mt, which was there first).
    #[allow(dead_code)] // not every includer asks
    pub fn is_multi_loop(self) -> bool {
        matches!(self, Model::FibersMt | Model::MayMt)
    }

    /// The model called `name`.
    #[allow(dead_code)] // the grid bench walks ALL instead
    pub fn parse(name: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// tokio's single-threaded runtime, as its users build it.
#[allow(dead_code)] // not every includer runs tokio
pub fn tokio_ct() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio current_thread runtime")
}

/// Workers (loops) of every multi-threaded model: this machine has two cores.
pub const MT_WORKERS: usize = 2;

/// tokio's work-stealing runtime with `MT_WORKERS` workers.
#[allow(dead_code)]
pub fn tokio_mt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(MT_WORKERS)
        .enable_all()
        .build()
        .expect("tokio multi_thread runtime")
}

/// fiberloop's multi-loop runtime with `MT_WORKERS` loops.
#[allow(dead_code)]
pub fn fibers_mt() -> fiberloop::Runtime {
    fiberloop::Runtime::builder()
        .loops(MT_WORKERS)
        .build()
        .expect("fiberloop runtime")
}

/// Configures `may` once per process, with no pinning of its own (the
/// harness pins processes): one worker for `may` (the closest match to one
/// fiberloop loop), `MT_WORKERS` for `may-mt`. The first call wins, so a
/// process runs one of the two (each server and skynet run is a process).
pub fn may_init(model: Model) {
    static INIT: Once = Once::new();
    let workers = if model == Model::MayMt { MT_WORKERS } else { 1 };
    INIT.call_once(|| {
        may::config().set_workers(workers).set_worker_pin(false);
    });
}
