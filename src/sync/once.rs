//! [`OnceCell`]: a value initialized once, where the initializer may block the
//! fiber and concurrent callers wait for it instead of running it again.
//!
//! `std::sync::OnceLock` would block the whole *thread* of a second fiber that
//! asks while the first is still initializing (and so deadlock the loop the
//! first fiber needs to finish); this one parks the second fiber.

use std::fmt;
use std::sync::{Mutex as StdMutex, OnceLock};

use super::{block, lock, wake_all, Op, Until, WaitQueue};
use crate::rt::wait::WaitError;

/// A cell written once, by the first caller of `get_or_init`.
///
/// ```
/// use std::rc::Rc;
/// use fiberloop::sync::OnceCell;
///
/// fiberloop::run(|| {
///     let config = Rc::new(OnceCell::new());
///     let readers: Vec<_> = (0..3)
///         .map(|_| {
///             let config = config.clone();
///             fiberloop::spawn(move || {
///                 *config
///                     .get_or_init(|| {
///                         fiberloop::sleep(std::time::Duration::from_millis(2)); // blocks
///                         42
///                     })
///                     .unwrap()
///             })
///         })
///         .collect();
///     for r in readers {
///         assert_eq!(r.join().unwrap(), 42); // one initializer ran; the others waited
///     }
/// });
/// ```
pub struct OnceCell<T> {
    value: OnceLock<T>,
    state: StdMutex<State>,
}

#[derive(Default)]
struct State {
    initializing: bool,
    waiters: WaitQueue,
}

impl<T> OnceCell<T> {
    /// An empty cell.
    pub fn new() -> OnceCell<T> {
        OnceCell {
            value: OnceLock::new(),
            state: StdMutex::default(),
        }
    }

    /// The value, if initialized.
    pub fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// Sets the value if the cell is empty and nobody is initializing it;
    /// otherwise gives `value` back.
    ///
    /// # Errors
    /// `Err(value)` if the cell is set or being initialized.
    pub fn set(&self, value: T) -> Result<(), T> {
        let state = lock(&self.state);
        if state.initializing {
            return Err(value);
        }
        let result = self.value.set(value);
        drop(state);
        self.wake_waiters();
        result
    }

    /// The value, running `init` to create it if the cell is empty. While one
    /// caller runs `init` (which may block its fiber), other callers wait; if
    /// `init` panics, the next waiter runs its own.
    ///
    /// # Errors
    /// [`WaitError`] if called while the fiber is unwinding (or a timeout scope expires)
    /// while waiting for another initializer.
    pub fn get_or_init(&self, init: impl FnOnce() -> T) -> Result<&T, WaitError> {
        loop {
            if let Some(value) = self.value.get() {
                return Ok(value);
            }
            if self.claim() {
                let guard = Release(self);
                let value = init();
                let _ = self.value.set(value);
                drop(guard);
                return Ok(self.value.get().expect("just set"));
            }
            block(&mut self.until(), None)?;
        }
    }

    /// Waits until another caller has initialized the cell (the async face:
    /// an async task cannot run a blocking initializer).
    pub async fn wait_async(&self) -> &T {
        let mut op = self.until();
        loop {
            if let Some(value) = self.value.get() {
                return value;
            }
            std::future::poll_fn(|cx| op.poll_op(cx)).await;
        }
    }

    /// Waiting for an initialization in progress to end (the initializer sets
    /// the value before it clears `initializing`).
    fn until(&self) -> Until<'_, State> {
        Until::new(
            "another task's initialization of a OnceCell",
            &self.state,
            |s| !s.initializing,
            |s| &mut s.waiters,
        )
    }

    /// Takes the right to initialize; false if set or someone else has it.
    fn claim(&self) -> bool {
        let mut state = lock(&self.state);
        if state.initializing || self.value.get().is_some() {
            return false;
        }
        state.initializing = true;
        true
    }

    fn wake_waiters(&self) {
        let waiters = lock(&self.state).waiters.take_all();
        wake_all(waiters);
    }
}

/// Ends an initialization, set or not (a panicking `init`), and wakes waiters.
struct Release<'a, T>(&'a OnceCell<T>);

impl<T> Drop for Release<'_, T> {
    fn drop(&mut self) {
        lock(&self.0.state).initializing = false;
        self.0.wake_waiters();
    }
}

impl<T> Default for OnceCell<T> {
    fn default() -> OnceCell<T> {
        OnceCell::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnceCell")
            .field("value", &self.get())
            .finish()
    }
}
