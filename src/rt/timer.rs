//! Timers: a binary min-heap of deadlines with lazy cancellation.
//!
//! `sleep`, `call_later`/`call_at` and every I/O timeout insert an entry; the
//! loop asks for the earliest deadline to bound its `poll` timeout (so it sleeps
//! exactly until the next timer and never spins) and fires what has expired.
//!
//! # Implementation notes
//!
//! Entries live in a slab; the heap holds `(deadline, seq, key)`. Cancelling
//! removes the slab entry only (O(1)); its heap item goes stale and is skipped
//! when it reaches the top, recognised because the slab slot is empty or holds
//! an entry with another `seq`. I/O timeouts are almost always cancelled, so when
//! stale items outnumber live ones the heap is rebuilt without them, which keeps
//! memory bounded by the live timers. `seq` also breaks deadline ties, so timers
//! with the same deadline fire in the order they were set (asyncio's rule).
//!
//! A hierarchical wheel would make insertion O(1), but a heap is exact (no tick
//! rounding), simple, and at the few thousand live timers a loop typically
//! holds its O(log n) is a handful of comparisons.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::task::Waker;
use std::time::Instant;

use slab::Slab;

use crate::rt::scheduler::CallbackCell;

/// What an expired timer does.
pub(crate) enum TimerAction {
    /// Wake a waiting fiber or task.
    Wake(Waker),
    /// Queue a `call_later`/`call_at` callback.
    Call(Rc<CallbackCell>),
}

/// Identifies a timer for cancellation; stale keys are harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey {
    key: usize,
    seq: u64,
}

struct Entry {
    seq: u64,
    action: TimerAction,
}

#[derive(PartialEq, Eq)]
struct HeapItem {
    deadline: Instant,
    seq: u64,
    key: usize,
}

impl Ord for HeapItem {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The loop's timers.
#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<HeapItem>>,
    entries: Slab<Entry>,
    next_seq: u64,
}

impl Timers {
    /// Adds a timer that fires at `deadline`.
    pub(crate) fn insert(&mut self, deadline: Instant, action: TimerAction) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = self.entries.insert(Entry { seq, action });
        self.heap.push(Reverse(HeapItem { deadline, seq, key }));
        TimerKey { key, seq }
    }

    /// Cancels a timer that has not fired; returns its action, if it was live.
    pub(crate) fn cancel(&mut self, timer: TimerKey) -> Option<TimerAction> {
        match self.entries.get(timer.key) {
            Some(entry) if entry.seq == timer.seq => {}
            _ => return None,
        }
        let entry = self.entries.remove(timer.key);
        let stale = self.heap.len() - self.entries.len();
        if stale > 64 && stale > self.entries.len() {
            self.compact();
        }
        Some(entry.action)
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse(item)| item.deadline)
    }

    /// Removes and returns one timer whose deadline is at or before `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<TimerAction> {
        self.drop_stale_top();
        let Reverse(top) = self.heap.peek()?;
        if top.deadline > now {
            return None;
        }
        let Reverse(item) = self.heap.pop()?;
        Some(self.entries.remove(item.key).action)
    }

    /// Number of live timers.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops every timer (loop teardown).
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
        self.entries.clear();
    }

    fn is_live(&self, item: &HeapItem) -> bool {
        self.entries
            .get(item.key)
            .is_some_and(|e| e.seq == item.seq)
    }

    fn drop_stale_top(&mut self) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.is_live(top) {
                break;
            }
            self.heap.pop();
        }
    }

    fn compact(&mut self) {
        let heap = std::mem::take(&mut self.heap);
        self.heap = heap
            .into_iter()
            .filter(|Reverse(item)| self.is_live(item))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    struct Flag(std::sync::atomic::AtomicUsize);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn waker() -> Waker {
        Waker::from(Arc::new(Flag(Default::default())))
    }

    fn drain(timers: &mut Timers, now: Instant) -> usize {
        std::iter::from_fn(|| timers.pop_expired(now)).count()
    }

    #[test]
    fn fires_in_deadline_then_insertion_order() {
        let mut timers = Timers::default();
        let t0 = Instant::now();
        let late = timers.insert(t0 + Duration::from_millis(20), TimerAction::Wake(waker()));
        let early = timers.insert(t0 + Duration::from_millis(10), TimerAction::Wake(waker()));
        let tie = timers.insert(t0 + Duration::from_millis(10), TimerAction::Wake(waker()));
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(drain(&mut timers, t0 + Duration::from_millis(5)), 0);
        let order: Vec<u64> = std::iter::from_fn(|| {
            let top = timers.heap.peek().map(|Reverse(i)| i.seq);
            timers
                .pop_expired(t0 + Duration::from_millis(30))
                .map(|_| top.unwrap())
        })
        .collect();
        assert_eq!(order, vec![early.seq, tie.seq, late.seq]);
    }

    #[test]
    fn cancelled_timers_never_fire_and_are_compacted() {
        let mut timers = Timers::default();
        let t0 = Instant::now();
        let keys: Vec<_> = (0..1000)
            .map(|i| timers.insert(t0 + Duration::from_micros(i), TimerAction::Wake(waker())))
            .collect();
        for key in &keys[..990] {
            assert!(timers.cancel(*key).is_some());
            assert!(timers.cancel(*key).is_none(), "a second cancel is a no-op");
        }
        assert_eq!(timers.len(), 10);
        assert!(
            timers.heap.len() <= 2 * 10 + 64,
            "stale heap items were compacted"
        );
        assert_eq!(drain(&mut timers, t0 + Duration::from_secs(1)), 10);
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn a_reused_slot_does_not_match_an_old_key() {
        let mut timers = Timers::default();
        let now = Instant::now();
        let old = timers.insert(now, TimerAction::Wake(waker()));
        assert!(timers.pop_expired(now).is_some());
        let _new = timers.insert(now, TimerAction::Wake(waker()));
        assert!(
            timers.cancel(old).is_none(),
            "the old key names a fired timer"
        );
        assert_eq!(timers.len(), 1);
    }
}
