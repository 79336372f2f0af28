//! The models under comparison, and how each one's runtime is built.

use std::sync::Once;

/// One way of running concurrent work.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Model {
    /// fiberloop's stackful fibers, blocking-style code.
    Fibers,
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
    /// fiberloop's transports and protocols (PEP 3156 callbacks): servers only.
    Callbacks,
    /// A hand-written single-threaded mio loop: what the syscalls alone cost.
    Mio,
}

impl Model {
    /// Every model, in table order.
    pub const ALL: [Model; 8] = [
        Model::Fibers,
        Model::Async,
        Model::TokioCt,
        Model::TokioMt,
        Model::Threads,
        Model::May,
        Model::Callbacks,
        Model::Mio,
    ];

    /// The short name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Model::Fibers => "fibers",
            Model::Async => "async",
            Model::TokioCt => "tokio-ct",
            Model::TokioMt => "tokio-mt",
            Model::Threads => "threads",
            Model::May => "may",
            Model::Callbacks => "callbacks",
            Model::Mio => "mio",
        }
    }

    /// Whether the model has tasks to spawn (the callback style and the mio
    /// floor only serve connections).
    pub fn has_tasks(self) -> bool {
        !matches!(self, Model::Callbacks | Model::Mio)
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

/// tokio's work-stealing runtime with two workers (this machine has two cores).
#[allow(dead_code)]
pub fn tokio_mt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio multi_thread runtime")
}

/// Configures `may` once per process: one worker (the closest match to one
/// fiberloop loop), and no pinning of its own (the harness pins processes).
pub fn may_init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        may::config().set_workers(1).set_worker_pin(false);
    });
}
