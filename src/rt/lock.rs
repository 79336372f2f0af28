//! The small helpers every part of the core leans on: a poison-ignoring
//! `lock` for the std mutexes that guard short critical sections, and the
//! saturating deadline arithmetic behind every timeout.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Locks a primitive's state. A panic while it was held cannot leave it
/// inconsistent (every critical section is a few assignments), so poisoning is
/// ignored.
#[inline]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The loop's clock (`rt::sim::now`: virtual in a simulation) plus
/// `duration`, saturating about a century ahead (an "infinite" timeout still
/// makes a valid deadline).
pub(crate) fn deadline_after(duration: Duration) -> Instant {
    let now = crate::rt::sim::now();
    now.checked_add(duration)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}
