//! `tracing` per fiber (Cargo feature `tracing`): a task keeps the span it
//! was spawned in, and the spans a fiber enters stay with that fiber.
//!
//! A fiber runs on its loop's thread between parks, and `tracing`'s
//! subscribers keep the entered spans per thread. Left alone, a span a fiber
//! entered would still be "current" when the loop runs the next fiber, and
//! that fiber's events would be attributed to it. So the loop brackets each
//! run of a task ([`TaskSpan::enter`] before, [`TaskSpan::exit`] after):
//!
//! - before: enter the task's spawn span (its parent for everything it
//!   creates), then the spans the fiber had entered when it last parked;
//! - after: exit, innermost first, every span entered since the run began,
//!   keeping the fiber's own to enter again next time, and the spawn span.
//!
//! This is what `tracing::Instrument` does for a future, done for a stack
//! (an async task gets its spawn span around each poll; its futures use
//! `Instrument` for their own). The spans are found through the dispatcher's
//! `current_span`, so this works with any subscriber that tracks the
//! current span (tracing-subscriber's `Registry` does); with one that does
//! not, only the spawn span is entered and exited.
//!
//! TRACE events (target `fiberloop`) mark each task's spawn, park, wake and
//! finish, with its id and name.

use std::cell::RefCell;

use tracing::dispatcher;
use tracing::span::Id;

/// Most spans a fiber can have entered at a park that are kept for it.
const MAX_DEPTH: usize = 64;

/// A task's spans: the one it was spawned in, and (for a fiber) those it
/// had entered when it last stopped running.
pub(crate) struct TaskSpan {
    spawn: tracing::Span,
    /// The fiber's own entered spans, outermost first.
    saved: RefCell<Vec<Id>>,
    /// What was current on the thread when the run began.
    floor: RefCell<Option<Id>>,
}

impl TaskSpan {
    /// The current span, as a new task's spawn span.
    pub(crate) fn current() -> TaskSpan {
        TaskSpan {
            spawn: tracing::Span::current(),
            saved: RefCell::new(Vec::new()),
            floor: RefCell::new(None),
        }
    }

    /// Before a run of the task.
    pub(crate) fn enter(&self) {
        dispatcher::get_default(|dispatch| {
            let floor = dispatch.current_span().id().cloned();
            if let Some(id) = self.spawn.id().filter(|id| Some(id) != floor.as_ref()) {
                dispatch.enter(&id);
            }
            for id in self.saved.borrow().iter() {
                dispatch.enter(id);
            }
            *self.floor.borrow_mut() = floor;
        });
    }

    /// After a run of the task: `keep` the spans still entered (the fiber
    /// parked or yielded; it finished, or is an async task, otherwise).
    pub(crate) fn exit(&self, keep: bool) {
        dispatcher::get_default(|dispatch| {
            let floor = self.floor.borrow_mut().take();
            let spawn = self.spawn.id();
            let mut entered: Vec<Id> = Vec::new();
            // Bounded, and stopped by a span that does not leave: a
            // subscriber may ignore an exit.
            for _ in 0..MAX_DEPTH {
                let current = dispatch.current_span();
                let Some(id) = current.id() else { break };
                if Some(id) == floor.as_ref() || entered.last() == Some(id) {
                    break;
                }
                let id = id.clone();
                dispatch.exit(&id);
                entered.push(id);
            }
            // Innermost first: the spawn span, if entered here, is last.
            if entered.last().is_some() && entered.last() == spawn.as_ref() {
                entered.pop();
            }
            entered.reverse();
            *self.saved.borrow_mut() = if keep { entered } else { Vec::new() };
        });
    }
}

/// A TRACE event about task `id` (`what`: spawn, park, wake, finish).
#[inline]
pub(crate) fn event(what: &'static str, id: u64, name: Option<&str>) {
    tracing::trace!(target: "fiberloop", task = id, name = name.unwrap_or(""), "{what}");
}
