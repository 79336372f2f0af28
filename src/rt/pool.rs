//! Each loop's bounded pool of OS threads for blocking calls: threads start
//! on demand up to a bound, an idle thread exits after [`KEEP_ALIVE`], jobs
//! beyond the bound wait in FIFO order, and the pool shuts down with its loop.
//! The user-facing calls (`unblock`, `unblock_async`) are in `crate::blocking`.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::rt::lock::lock;

/// Threads a loop's pool starts at most, unless configured otherwise.
pub const DEFAULT_MAX_THREADS: usize = 64;

/// How long an idle pool thread waits for work before it exits.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// A bounded pool of threads for blocking calls.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    state: Mutex<PoolState>,
    work: Condvar,
}

struct PoolState {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
    max: usize,
    closed: bool,
}

impl Pool {
    pub(crate) fn new() -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                state: Mutex::new(PoolState {
                    jobs: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    max: DEFAULT_MAX_THREADS,
                    closed: false,
                }),
                work: Condvar::new(),
            }),
        }
    }

    /// The pool of plain threads' async calls (no loop to own one); it lives
    /// as long as the process.
    pub(crate) fn global() -> &'static Pool {
        static GLOBAL: OnceLock<Pool> = OnceLock::new();
        GLOBAL.get_or_init(Pool::new)
    }

    /// Sets the bound on threads (at least one). Threads above a lowered bound
    /// exit once idle.
    pub(crate) fn set_max_threads(&self, max: usize) {
        lock(&self.inner.state).max = max.max(1);
        self.inner.work.notify_all();
    }

    /// Threads alive now (busy or idle).
    pub(crate) fn threads(&self) -> usize {
        lock(&self.inner.state).threads
    }

    /// Queues `job`, starting a thread if none is idle and the bound allows.
    pub(crate) fn submit(&self, job: Job) -> io::Result<()> {
        let mut state = lock(&self.inner.state);
        if state.closed {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the event loop's blocking pool is shut down",
            ));
        }
        state.jobs.push_back(job);
        if state.idle >= state.jobs.len() {
            drop(state);
            self.inner.work.notify_one();
            return Ok(());
        }
        if state.threads < state.max {
            state.threads += 1;
            let inner = self.inner.clone();
            let started = std::thread::Builder::new()
                .name("fiberloop-blocking".into())
                .spawn(move || inner.work_loop());
            if let Err(e) = started {
                state.threads -= 1;
                if state.threads == 0 {
                    // No thread will ever run it: hand the job back as an error.
                    drop(state.jobs.pop_back());
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Closes the pool: later submissions fail, queued jobs are dropped unrun
    /// (their waiters see an error), idle threads exit now, busy ones after
    /// their current job.
    pub(crate) fn shutdown(&self) {
        let dropped = {
            let mut state = lock(&self.inner.state);
            state.closed = true;
            std::mem::take(&mut state.jobs)
        };
        self.inner.work.notify_all();
        drop(dropped); // outside the lock: dropping a job wakes its waiter
    }
}

impl PoolInner {
    fn work_loop(&self) {
        let mut state = lock(&self.state);
        loop {
            if let Some(job) = state.jobs.pop_front() {
                drop(state);
                job(); // panics are caught inside the job (see `Slot::job`)
                state = lock(&self.state);
                continue;
            }
            if state.closed || state.threads > state.max {
                break;
            }
            state.idle += 1;
            let (next, timeout) = self
                .work
                .wait_timeout(state, KEEP_ALIVE)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            if timeout.timed_out() && state.jobs.is_empty() {
                break;
            }
        }
        state.threads -= 1;
    }
}
