//! The closing protocol of a loop's cross-thread queues (the remote-wake
//! queue and the runtime's queue of unadopted tasks): other threads push
//! while the loop lives; the loop closes once, at its teardown, and from
//! then on nothing it would never run may stay queued.
//!
//! A push checks the flag, pushes, and checks again; closing sets the flag
//! and drains. Both checks and the store are `SeqCst`, so in their single
//! total order either the closer's drain comes after the push (and takes
//! the item), or the pusher's second check sees the flag (and drains
//! itself). Every item therefore ends exactly once: run by the loop,
//! drained by one of the two sides, or refused before it was pushed. The
//! `loom_model` tests below check that over every interleaving, with a
//! locked `Vec` standing in for the lock-free queue.

use crate::rt::loom::sync::atomic::{AtomicBool, Ordering};

/// A loop's "closed" flag and the push/close protocol around it.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    closed: AtomicBool,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate {
            closed: AtomicBool::new(false),
        }
    }

    /// True once the loop has closed.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Pushes `item` unless the loop has closed (then gives it back). If the
    /// loop closes meanwhile, runs `drain`, which must empty the queue.
    #[inline]
    pub(crate) fn push<T>(
        &self,
        item: T,
        push: impl FnOnce(T),
        drain: impl FnOnce(),
    ) -> Result<(), T> {
        if self.is_closed() {
            return Err(item);
        }
        push(item);
        if self.is_closed() {
            drain();
        }
        Ok(())
    }

    /// Closes the gate, then runs `drain`, which must empty the queue.
    pub(crate) fn close(&self, drain: impl FnOnce()) {
        self.closed.store(true, Ordering::SeqCst);
        drain();
    }
}

#[cfg(all(test, loom))]
mod loom_model {
    use super::Gate;
    use crate::rt::loom::sync::Mutex;
    use loom::sync::Arc;
    use loom::thread;

    /// Where each item ended: the loop ran it, a drain took it, or the
    /// push was refused.
    #[derive(Default)]
    struct Ends {
        queue: Mutex<Vec<u32>>,
        ran: Mutex<Vec<u32>>,
        drained: Mutex<Vec<u32>>,
        refused: Mutex<Vec<u32>>,
    }

    impl Ends {
        fn drain(&self) {
            let items: Vec<u32> = self.queue.lock().unwrap().drain(..).collect();
            self.drained.lock().unwrap().extend(items);
        }
    }

    /// Two pushers race a loop that takes one item and then closes: every
    /// item ends exactly once and nothing is left queued.
    #[test]
    fn every_pushed_item_ends_once_whatever_the_close_races() {
        crate::rt::loom::model(|| {
            let gate = Arc::new(Gate::new());
            let ends = Arc::new(Ends::default());
            let pushers: Vec<_> = [1u32, 2]
                .into_iter()
                .map(|item| {
                    let (gate, ends) = (gate.clone(), ends.clone());
                    thread::spawn(move || {
                        let pushed = gate.push(
                            item,
                            |item| ends.queue.lock().unwrap().push(item),
                            || ends.drain(),
                        );
                        if let Err(item) = pushed {
                            ends.refused.lock().unwrap().push(item);
                        }
                    })
                })
                .collect();
            // The loop: runs what is queued, then closes.
            let taken = ends.queue.lock().unwrap().pop();
            if let Some(item) = taken {
                ends.ran.lock().unwrap().push(item);
            }
            gate.close(|| ends.drain());
            for pusher in pushers {
                pusher.join().unwrap();
            }
            assert!(ends.queue.lock().unwrap().is_empty(), "nothing stranded");
            let mut all: Vec<u32> = [&ends.ran, &ends.drained, &ends.refused]
                .iter()
                .flat_map(|list| list.lock().unwrap().clone())
                .collect();
            all.sort_unstable();
            assert_eq!(all, vec![1, 2], "each item ended exactly once");
        });
    }
}
