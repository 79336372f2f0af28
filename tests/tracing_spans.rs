//! The `tracing` feature: a span entered in one fiber is never current in
//! another; a spawned fiber (or async task) runs in the span it was spawned
//! in; spawn, park, wake and finish are TRACE events.
#![cfg(feature = "tracing")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The name of the current span, if any.
fn current() -> Option<&'static str> {
    tracing::Span::current().metadata().map(|m| m.name())
}

/// Runs `body` with a span-tracking subscriber on this thread.
fn with_registry<T>(body: impl FnOnce() -> T) -> T {
    tracing::subscriber::with_default(tracing_subscriber::registry(), body)
}

#[test]
fn a_span_entered_in_one_fiber_is_not_current_in_another() {
    with_registry(|| {
        fiberloop::run(|| {
            let a = fiberloop::spawn(|| {
                let span = tracing::info_span!("a");
                let _entered = span.enter();
                assert_eq!(current(), Some("a"));
                fiberloop::sleep(Duration::from_millis(10)); // parks
                assert_eq!(current(), Some("a"), "kept across the park");
                fiberloop::yield_now();
                assert_eq!(current(), Some("a"), "kept across a yield");
            });
            let b = fiberloop::spawn(|| {
                fiberloop::yield_now(); // a has entered "a" and parked
                assert_eq!(current(), None, "a's span leaked into b");
                let span = tracing::info_span!("b");
                let _entered = span.enter();
                fiberloop::sleep(Duration::from_millis(20));
                assert_eq!(current(), Some("b"));
            });
            fiberloop::yield_now();
            assert_eq!(current(), None, "a fiber's span leaked into main");
            a.join().unwrap();
            b.join().unwrap();
        });
        assert_eq!(current(), None, "a span leaked out of the loop");
    });
}

/// The name of `span`'s parent, as the registry recorded it.
fn parent_of(span: &tracing::Span) -> Option<String> {
    use tracing_subscriber::registry::LookupSpan;
    let id = span.id()?;
    tracing::dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let parent = registry.span(&id)?.parent()?;
        Some(parent.name().to_string())
    })
}

#[test]
fn a_spawned_fiber_and_task_run_in_the_span_they_were_spawned_in() {
    with_registry(|| {
        fiberloop::run(|| {
            let request = tracing::info_span!("request");
            let _entered = request.enter();
            let fiber = fiberloop::spawn(|| {
                assert_eq!(current(), Some("request"));
                fiberloop::sleep(Duration::from_millis(5));
                assert_eq!(current(), Some("request"), "after a park");
                let child = tracing::info_span!("child");
                assert_eq!(parent_of(&child).as_deref(), Some("request"));
            });
            let task = fiberloop::task::spawn(async {
                assert_eq!(current(), Some("request"));
                fiberloop::time::sleep(Duration::from_millis(5)).await;
                assert_eq!(current(), Some("request"), "after a pending poll");
            });
            drop(_entered);
            fiber.join().unwrap();
            fiberloop::wait(task).unwrap().unwrap();
            assert_eq!(current(), None);
        });
    });
}

/// Collects the messages of events with target `fiberloop`.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Message(String);
        impl Visit for Message {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        if event.metadata().target() == "fiberloop" {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().unwrap().push(message.0);
        }
    }
}

#[test]
fn spawn_park_wake_and_finish_are_trace_events() {
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(events.clone());
    tracing::subscriber::with_default(subscriber, || {
        fiberloop::run(|| {
            let sleeper = fiberloop::Builder::new()
                .name("sleeper")
                .spawn(|| fiberloop::sleep(Duration::from_millis(5)))
                .unwrap();
            sleeper.join().unwrap();
        });
    });
    let events = events.0.lock().unwrap();
    let count = |what: &str| events.iter().filter(|e| e.as_str() == what).count();
    // main and the sleeper spawn and finish; the sleeper parks in its sleep
    // and main in its join, and each is woken.
    assert_eq!(count("spawn"), 2, "{events:?}");
    assert_eq!(count("finish"), 2, "{events:?}");
    assert!(count("park") >= 2, "{events:?}");
    assert!(count("wake") >= 2, "{events:?}");
}
