//! Scopes: [`timeout`], a deadline for every blocking call inside a closure
//! (Trio's cancel scopes), and [`scope`], fibers that may borrow from the
//! caller's stack and are all joined before it returns (`std::thread::scope`).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::rt::wait;
use crate::sync::deadline_after;
use crate::task::{JoinError, JoinHandle, TaskCell};
use crate::time::Elapsed;

/// Runs `f` with a deadline: every blocking call inside it (socket I/O,
/// `recv`, `lock`, `join`, `sleep`, ...) returns a timed-out error once
/// `duration` has passed, so `f` unwinds through ordinary `?`. Scopes nest;
/// the nearest deadline wins.
///
/// Returns `f`'s value, or [`Elapsed`] if the deadline passed before `f`
/// returned (its value is dropped then).
///
/// ```
/// use std::time::Duration;
///
/// fiberloop::run(|| {
///     let (_tx, rx) = fiberloop::sync::unbounded::<u32>();
///     let outcome = fiberloop::timeout(Duration::from_millis(10), || rx.recv());
///     assert!(outcome.is_err(), "nothing arrived in time");
/// });
/// ```
pub fn timeout<R>(duration: Duration, f: impl FnOnce() -> R) -> Result<R, Elapsed> {
    let deadline = deadline_after(duration);
    let previous = wait::replace_scope_deadline(None);
    let nearest = previous.map_or(deadline, |p| p.min(deadline));
    wait::replace_scope_deadline(Some(nearest));
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            wait::replace_scope_deadline(self.0);
        }
    }
    let restore = Restore(previous);
    let value = f();
    drop(restore);
    if crate::rt::sim::now() >= deadline {
        Err(Elapsed::new())
    } else {
        Ok(value)
    }
}

/// Runs `f` with a [`Scope`] for spawning fibers that may borrow from the
/// caller's stack. Every fiber spawned in the scope has finished when `scope`
/// returns.
///
/// Panics: if `f` or an unjoined fiber panics, `scope` waits for all the other
/// fibers to **finish** (it does not cancel them) and then re-raises the first
/// panic, as `std::thread::scope` does. A fiber joined through its handle
/// reports its panic there instead. If the calling fiber is cancelled while
/// `scope` waits, the cancellation is passed on to the scope's fibers, and
/// `scope` still waits for them (they may borrow from its stack); the calling
/// fiber then unwinds at its next suspension point.
///
/// Called while the fiber is unwinding (from a destructor), where a fiber may
/// not park, `scope` runs each spawned closure at once, in the caller's stack,
/// one after another.
///
/// ```
/// fiberloop::run(|| {
///     let mut counts = vec![0; 3];
///     let words = ["fiber", "loop", "scope"];
///     fiberloop::scope(|s| {
///         for (count, word) in counts.iter_mut().zip(&words) {
///             s.spawn(move || {
///                 fiberloop::yield_now();
///                 *count = word.len(); // borrows from the caller's stack
///             });
///         }
///     });
///     assert_eq!(counts, [5, 4, 5]);
/// });
/// ```
///
/// A borrow that does not outlive the scope is rejected:
///
/// ```compile_fail
/// fiberloop::run(|| {
///     fiberloop::scope(|s| {
///         let local = vec![1, 2, 3];
///         s.spawn(|| println!("{local:?}")); // `local` dies before the scope ends
///     });
/// });
/// ```
///
/// # Panics
/// Outside a fiber (it spawns fibers and waits for them).
pub fn scope<'env, F, R>(f: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    assert!(
        crate::rt::coro::in_fiber(),
        "fiberloop::scope must be called from a fiber"
    );
    let scope = Scope {
        spawned: RefCell::new(Vec::new()),
        panics: Rc::new(RefCell::new(Vec::new())),
        _scope: PhantomData,
        _env: PhantomData,
    };
    // Waits for every fiber even if `f` panics: they may borrow from here.
    struct WaitAll<'a, 's, 'e>(&'a Scope<'s, 'e>);
    impl Drop for WaitAll<'_, '_, '_> {
        fn drop(&mut self) {
            self.0.wait_all();
        }
    }
    let result = {
        let _wait = WaitAll(&scope);
        panic::catch_unwind(AssertUnwindSafe(|| f(&scope)))
    };
    match result {
        Err(payload) => panic::resume_unwind(payload),
        Ok(value) => {
            let first_panic = scope.panics.borrow_mut().iter_mut().find_map(Option::take);
            if let Some(payload) = first_panic {
                panic::resume_unwind(payload);
            }
            value
        }
    }
}

/// One entry per spawned fiber: its panic, until its handle takes it.
type Panics = Rc<RefCell<Vec<Option<Box<dyn Any + Send>>>>>;

/// The spawning side of [`scope`].
pub struct Scope<'scope, 'env: 'scope> {
    spawned: RefCell<Vec<Arc<TaskCell>>>,
    /// One entry per spawned fiber: its panic, until its handle takes it. (A
    /// panic payload is `'static`, so this holds nothing borrowed.)
    panics: Panics,
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns a fiber that may borrow anything that outlives the scope. Like
    /// [`spawn`](crate::spawn) otherwise.
    ///
    /// # Panics
    /// As [`spawn`](crate::spawn), if no stack can be mapped.
    #[track_caller]
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + 'scope,
        T: 'scope,
    {
        let value: Rc<Cell<Option<T>>> = Rc::new(Cell::new(None));
        let index = {
            let mut panics = self.panics.borrow_mut();
            panics.push(None);
            panics.len() - 1
        };
        let (their_value, their_panics) = (value.clone(), self.panics.clone());
        let body = move || match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => their_value.set(Some(v)),
            Err(payload) => their_panics.borrow_mut()[index] = Some(payload),
        };
        if std::thread::panicking() {
            // Unwinding: no fiber may park now, so no fiber is needed.
            body();
            return ScopedJoinHandle {
                handle: None,
                value,
                panics: self.panics.clone(),
                index,
                _scope: PhantomData,
            };
        }
        let body: Box<dyn FnOnce() + 'scope> = Box::new(body);
        // SAFETY: `scope` does not return, nor unwind past its frame, before
        // every fiber spawned here has finished (`WaitAll` waits even while
        // panicking, and shielded from cancellation), so everything `body`
        // borrows for 'scope outlives the fiber that runs it. The fiber's loop
        // unwinds newer fibers before older ones when it closes, so a scope's
        // fibers finish before the fiber that opened the scope unwinds.
        let body: Box<dyn FnOnce() + 'static> = unsafe { std::mem::transmute(body) };
        let handle: JoinHandle<()> = crate::spawn(body);
        self.spawned.borrow_mut().push(handle.cell().clone());
        ScopedJoinHandle {
            handle: Some(handle),
            value,
            panics: self.panics.clone(),
            index,
            _scope: PhantomData,
        }
    }

    /// Waits until every fiber of the scope has finished; passes a
    /// cancellation of the waiting fiber on to them.
    fn wait_all(&self) {
        let spawned = self.spawned.borrow().clone();
        let mut passed_on = false;
        let mut pass_on = || {
            if !passed_on {
                passed_on = true;
                spawned.iter().for_each(TaskCell::request_cancel);
            }
        };
        loop {
            // Shielded: the children may borrow from this stack, so the wait
            // cannot be abandoned; a cancellation is passed on instead.
            let done =
                wait::block_on_shielded(wait::WaitOn::Other("the fibers of its scope"), |cx| {
                    if crate::rt::coro::current_cancelled() {
                        pass_on();
                    }
                    for task in &spawned {
                        if task.poll_complete(cx).is_pending() {
                            return Poll::Pending;
                        }
                    }
                    Poll::Ready(())
                });
            match done {
                Ok(()) => return,
                // Force-unwound with children still running (the loop is
                // closing): ask them to stop and keep waiting; the loop
                // unwinds them before us.
                Err(_) => pass_on(),
            }
        }
    }
}

impl std::fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("spawned", &self.spawned.borrow().len())
            .finish()
    }
}

/// The handle of a fiber spawned in a [`scope`].
pub struct ScopedJoinHandle<'scope, T> {
    /// `None` for a closure that ran inline (spawned while unwinding).
    handle: Option<JoinHandle<()>>,
    value: Rc<Cell<Option<T>>>,
    panics: Panics,
    index: usize,
    _scope: PhantomData<&'scope ()>,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the fiber and returns its value, or its panic as the error
    /// (which then does not propagate out of the scope).
    ///
    /// # Errors
    /// A [`JoinError`] if the fiber panicked, was cancelled, or could not start.
    pub fn join(self) -> Result<T, JoinError> {
        if let Some(handle) = self.handle {
            handle.join()?;
        }
        if let Some(value) = self.value.take() {
            return Ok(value);
        }
        match self.panics.borrow_mut()[self.index].take() {
            Some(payload) => Err(JoinError::panicked(payload)),
            None => Err(JoinError::cancelled()),
        }
    }

    /// True once the fiber has finished.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl<T> std::fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
