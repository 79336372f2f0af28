//! The waiters of one registered source: any number per direction, and a
//! readiness tick that closes the race between a failed syscall and the
//! registration that follows it.
//!
//! This file owns only the list and its protocol; it knows nothing of mio,
//! loops or fibers, so that its `loom` model (the `loom_model` tests below,
//! built with `--cfg loom`) checks the code as it is.
//!
//! # The protocol
//!
//! ```text
//!   waiter (any thread)                    reactor (the registering loop)
//!   -------------------                    ------------------------------
//!   t = tick(dir)            (acquire)
//!   syscall -> WouldBlock
//!   lock; if tick(dir) != t: retry         lock; tick(dir) += 1; take all
//!         else push waker; unlock          unlock; wake every waker taken
//! ```
//!
//! Either the event's bump happens before the waiter's check (the waiter sees
//! a new tick and retries the syscall at once), or after its push (the event
//! takes and wakes it). No event can fall between the two, so no wake-up is
//! lost, on the registering loop or on any other thread.
//!
//! # Why every waiter is woken
//!
//! mio is edge-triggered: one event stands for "something changed", and there
//! is no second event for the same data. Waking one waiter of several would
//! lose the rest whenever the first takes less than everything (one datagram
//! of four, one connection of two). So an event wakes every waiter of its
//! direction, as tokio does; each retries its syscall, and those that find
//! nothing (`WouldBlock`) register again. The cost is a wasted syscall per
//! extra waiter, paid only when there are several.
//!
//! # Giving up
//!
//! A waiter that stops waiting (timed out, cancelled, its future dropped)
//! removes its own waker and nothing else: entries are told apart by
//! [`Waker::will_wake`], and a task waits in one place at a time, so its
//! waker names its entry. The first waiter of a direction lives inline, so
//! the common case of one waiter never allocates.

use std::task::Waker;

use crate::rt::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::rt::loom::sync::Mutex;

/// Which direction a waiter waits for: an index into the per-direction arrays.
pub(crate) type Direction = usize;

/// The waiters and readiness ticks of one source.
pub(crate) struct ScheduledIo {
    /// Readiness events seen per direction ([read, write]). Bumped under
    /// `waiters`' lock; read without it before a syscall.
    ticks: [AtomicUsize; 2],
    waiters: Mutex<[Waiters; 2]>,
}

/// The wakers waiting in one direction.
#[derive(Default)]
struct Waiters {
    /// The first waiter, inline (no allocation for the usual single waiter).
    first: Option<Waker>,
    /// Any further waiters.
    more: Vec<Waker>,
}

impl Waiters {
    fn position(&self, waker: &Waker) -> Option<usize> {
        self.more.iter().position(|w| w.will_wake(waker))
    }

    fn add(&mut self, waker: &Waker) {
        match &self.first {
            Some(first) if first.will_wake(waker) => {}
            None => self.first = Some(waker.clone()),
            Some(_) if self.position(waker).is_some() => {}
            Some(_) => self.more.push(waker.clone()),
        }
    }

    fn remove(&mut self, waker: &Waker) -> Option<Waker> {
        if self.first.as_ref().is_some_and(|w| w.will_wake(waker)) {
            let removed = self.first.take();
            self.first = self.more.pop();
            return removed;
        }
        let index = self.position(waker)?;
        Some(self.more.swap_remove(index))
    }

    fn take_all(&mut self, into: &mut Vec<Waker>) {
        into.extend(self.first.take());
        into.append(&mut self.more);
    }

    #[cfg(all(test, not(loom)))]
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }
}

impl ScheduledIo {
    pub(crate) fn new() -> ScheduledIo {
        ScheduledIo {
            ticks: [AtomicUsize::new(0), AtomicUsize::new(0)],
            waiters: Mutex::new([Waiters::default(), Waiters::default()]),
        }
    }

    fn waiters(&self) -> crate::rt::loom::sync::MutexGuard<'_, [Waiters; 2]> {
        // A waker that panicked while we held the lock leaves valid data behind.
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The readiness tick of `dir`: read it before the syscall whose
    /// `WouldBlock` leads to [`add_waiter`](Self::add_waiter).
    #[inline]
    pub(crate) fn tick(&self, dir: Direction) -> usize {
        self.ticks[dir].load(Ordering::Acquire)
    }

    /// Leaves `waker` for the next event of `dir`, unless an event came since
    /// `tick` was read: then returns false, and the caller retries its syscall.
    pub(crate) fn add_waiter(&self, dir: Direction, waker: &Waker, tick: usize) -> bool {
        let mut waiters = self.waiters();
        if self.ticks[dir].load(Ordering::Relaxed) != tick {
            return false;
        }
        waiters[dir].add(waker);
        true
    }

    /// Removes `waker`'s entry from `dir`, if it is there (a waiter giving up).
    pub(crate) fn remove_waiter(&self, dir: Direction, waker: &Waker) {
        let removed = self.waiters()[dir].remove(waker);
        drop(removed); // outside the lock: dropping a waker may run code
    }

    /// An event: bumps the tick of each direction that became ready and moves
    /// its waiters into `woken`, for the caller to wake outside any lock.
    pub(crate) fn ready(&self, read: bool, write: bool, woken: &mut Vec<Waker>) {
        let mut waiters = self.waiters();
        for (dir, hit) in [read, write].into_iter().enumerate() {
            if hit {
                self.ticks[dir].fetch_add(1, Ordering::Release);
                waiters[dir].take_all(woken);
            }
        }
    }

    /// Number of waiters in `dir` (for tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn waiter_count(&self, dir: Direction) -> usize {
        self.waiters()[dir].len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as Counter;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(Counter);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(Counter::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn every_waiter_is_woken_and_each_removes_only_itself() {
        let io = ScheduledIo::new();
        let wakers: Vec<_> = (0..4).map(|_| waker()).collect();
        for (_, w) in &wakers {
            assert!(io.add_waiter(0, w, io.tick(0)));
            assert!(io.add_waiter(0, w, io.tick(0)), "a second add is a no-op");
        }
        assert_eq!(io.waiter_count(0), 4);
        io.remove_waiter(0, &wakers[0].1); // the inline one gives up
        io.remove_waiter(0, &wakers[2].1);
        assert_eq!(io.waiter_count(0), 2);
        let mut woken = Vec::new();
        io.ready(true, false, &mut woken);
        woken.into_iter().for_each(Waker::wake);
        let counts: Vec<usize> = wakers
            .iter()
            .map(|(c, _)| c.0.load(std::sync::atomic::Ordering::SeqCst))
            .collect();
        assert_eq!(counts, [0, 1, 0, 1]);
        assert_eq!(io.waiter_count(0), 0);
    }

    #[test]
    fn an_event_since_the_tick_refuses_the_waiter() {
        let io = ScheduledIo::new();
        let (_, w) = waker();
        let tick = io.tick(1);
        io.ready(false, true, &mut Vec::new());
        assert!(!io.add_waiter(1, &w, tick), "the caller must retry");
        assert_eq!(io.waiter_count(1), 0);
        assert!(io.add_waiter(1, &w, io.tick(1)));
        assert_eq!(io.waiter_count(0), 0, "directions are separate");
    }
}

#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use crate::rt::loom::model as bounded;
    use loom::sync::atomic::AtomicUsize as Data;
    use loom::sync::{Arc, Notify};
    use std::task::Wake;

    /// A waiter's waker: lets its thread out of `Notify::wait`.
    struct Park(Notify);
    impl Wake for Park {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.notify();
        }
    }

    /// The waiter side of the protocol, as `Source::poll_io` runs it: read
    /// the tick, try the "syscall" (take one unit of data), register, park.
    fn wait_for_data(io: &ScheduledIo, data: &Data) {
        let park = std::sync::Arc::new(Park(Notify::new()));
        let waker = Waker::from(park.clone());
        loop {
            let tick = io.tick(0);
            let taken = data
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok();
            if taken {
                return;
            }
            if io.add_waiter(0, &waker, tick) {
                park.0.wait();
            }
        }
    }

    /// The reactor side: data arrives, then its event.
    fn arrive(io: &ScheduledIo, data: &Data, units: usize) {
        data.fetch_add(units, Ordering::AcqRel);
        let mut woken = Vec::new();
        io.ready(true, false, &mut woken);
        woken.into_iter().for_each(Waker::wake);
    }

    /// One waiter, one event on another thread: the wake-up is never lost,
    /// wherever the event falls between the syscall and the registration.
    #[test]
    fn a_wake_up_is_never_lost() {
        bounded(|| {
            let io = Arc::new(ScheduledIo::new());
            let data = Arc::new(Data::new(0));
            let reactor = {
                let (io, data) = (io.clone(), data.clone());
                loom::thread::spawn(move || arrive(&io, &data, 1))
            };
            wait_for_data(&io, &data);
            reactor.join().unwrap();
        });
    }

    /// Two waiters, one event carrying two units (two datagrams, two
    /// connections): both get theirs.
    #[test]
    fn one_event_serves_every_waiter() {
        bounded(|| {
            let io = Arc::new(ScheduledIo::new());
            let data = Arc::new(Data::new(0));
            let other = {
                let (io, data) = (io.clone(), data.clone());
                loom::thread::spawn(move || wait_for_data(&io, &data))
            };
            let reactor = {
                let (io, data) = (io.clone(), data.clone());
                loom::thread::spawn(move || arrive(&io, &data, 2))
            };
            wait_for_data(&io, &data);
            other.join().unwrap();
            reactor.join().unwrap();
        });
    }

    /// A waiter that gives up (timed out) while an event arrives removes
    /// only itself: the one still waiting is woken.
    #[test]
    fn a_waiter_giving_up_removes_only_itself() {
        bounded(|| {
            let io = Arc::new(ScheduledIo::new());
            let data = Arc::new(Data::new(0));
            let quitter = {
                let io = io.clone();
                loom::thread::spawn(move || {
                    let park = std::sync::Arc::new(Park(Notify::new()));
                    let waker = Waker::from(park);
                    if io.add_waiter(0, &waker, io.tick(0)) {
                        io.remove_waiter(0, &waker);
                    }
                })
            };
            let reactor = {
                let (io, data) = (io.clone(), data.clone());
                loom::thread::spawn(move || arrive(&io, &data, 1))
            };
            wait_for_data(&io, &data);
            quitter.join().unwrap();
            reactor.join().unwrap();
        });
    }
}
