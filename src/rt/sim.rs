//! The simulation mode's state for this thread's loop (`fiberloop::sim`):
//! the virtual clock that every time reading inside fiberloop goes through,
//! and the seeded generator that picks which ready item runs next and
//! which waiter a notification wakes.
//!
//! Outside a simulation, [`now`] is `Instant::now()` after one read of a
//! thread-local, and [`pick`] returns 0 (the front: FIFO) after one.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

thread_local! {
    /// The virtual time, while this thread's loop simulates.
    static NOW: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The generator's state, while the simulation is seeded.
    static RNG: Cell<Option<u64>> = const { Cell::new(None) };
    /// The ids of the tasks run so far, in order (simulations only).
    static RUNS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// Idle looks in a row that found every task blocked and no timer.
    static STUCK: Cell<u32> = const { Cell::new(0) };
}

/// How many idle looks in a row, each after a short real wait
/// ([`STUCK_WAIT`]), find every task blocked with no timer before the
/// simulation calls it a deadlock: a plain thread's send gets that long.
pub(crate) const STUCK_LOOKS: u32 = 5;

/// The real wait between two such looks.
pub(crate) const STUCK_WAIT: std::time::Duration = std::time::Duration::from_millis(25);

/// One more look found every task blocked and no timer; true once that
/// has happened [`STUCK_LOOKS`] times in a row.
pub(crate) fn stuck() -> bool {
    STUCK.with(|stuck| {
        stuck.set(stuck.get() + 1);
        stuck.get() >= STUCK_LOOKS
    })
}

/// The loop's clock: virtual time in a simulation, the real one otherwise.
#[inline]
pub(crate) fn now() -> Instant {
    NOW.with(Cell::get).unwrap_or_else(Instant::now)
}

/// True while this thread's loop simulates.
#[inline]
pub(crate) fn active() -> bool {
    NOW.with(Cell::get).is_some()
}

/// Starts a simulation on this thread: the clock stops at the real time
/// now and moves only when [`advance_to`] says; `seed` draws the orders.
pub(crate) fn start(seed: Option<u64>) {
    if seed.is_some() {
        SEEDED.fetch_add(1, Ordering::Relaxed);
    }
    NOW.with(|now| now.set(Some(Instant::now())));
    RNG.with(|rng| rng.set(seed));
    RUNS.with(|runs| runs.borrow_mut().clear());
    STUCK.with(|stuck| stuck.set(0));
}

/// Ends this thread's simulation.
pub(crate) fn stop() {
    if seeded() {
        SEEDED.fetch_sub(1, Ordering::Relaxed);
    }
    NOW.with(|now| now.set(None));
    RNG.with(|rng| rng.set(None));
    RUNS.with(|runs| runs.borrow_mut().clear());
}

/// The ids of the tasks run so far, in the order they ran (taken).
pub(crate) fn take_runs() -> Vec<u64> {
    RUNS.with(|runs| std::mem::take(&mut *runs.borrow_mut()))
}

/// Moves the virtual clock forward to `when` (never back).
pub(crate) fn advance_to(when: Instant) {
    NOW.with(|now| {
        if let Some(at) = now.get() {
            now.set(Some(at.max(when)));
        }
    });
}

/// Seeded simulations alive in the process: the one word the hot paths
/// read (a relaxed load) before looking at their thread's state.
static SEEDED: AtomicUsize = AtomicUsize::new(0);

/// True if any thread of the process runs a seeded simulation.
#[inline(always)]
pub(crate) fn any_seeded() -> bool {
    SEEDED.load(Ordering::Relaxed) != 0
}

/// True if the simulation draws its orders from a seed.
#[inline]
pub(crate) fn seeded() -> bool {
    RNG.with(Cell::get).is_some()
}

/// An index below `len`: drawn from the seed in a seeded simulation, 0
/// (the front) otherwise.
#[inline]
pub(crate) fn pick(len: usize) -> usize {
    if len < 2 {
        return 0;
    }
    RNG.with(|rng| match rng.get() {
        None => 0,
        Some(state) => {
            // splitmix64: small, fast, and the same on every platform.
            let state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            rng.set(Some(state));
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z % len as u64) as usize
        }
    })
}

/// Notes that task `id` runs now (simulations only).
pub(crate) fn ran(id: u64) {
    STUCK.with(|stuck| stuck.set(0));
    RUNS.with(|runs| runs.borrow_mut().push(id));
}
