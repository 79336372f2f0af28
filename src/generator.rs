//! Generators: the road from PEP 255 to a fiber scheduler, on real stackful
//! coroutines sharing the fibers' stack pool.
//!
//! A [`Generator<S, Y, R>`] runs a closure on its own guarded stack. The closure
//! receives a [`Yielder`] and the first value sent in; each
//! [`Yielder::suspend`] hands a `Y` out to the caller of
//! [`resume`](Generator::resume) and returns the next `S` sent in (PEP 342's
//! two-way `yield`); when the closure returns `R`, the generator is complete.
//!
//! ```
//! use fiberloop::generator::{Generator, GeneratorState};
//!
//! // A running average, fed by `resume` (PEP 342's `send`).
//! let mut averager = Generator::new(|y, first: f64| {
//!     let (mut total, mut count) = (first, 1.0);
//!     loop {
//!         let next = y.suspend(total / count);
//!         total += next;
//!         count += 1.0;
//!     }
//! });
//! assert_eq!(averager.resume(10.0).unwrap(), GeneratorState::Yielded(10.0));
//! assert_eq!(averager.resume(20.0).unwrap(), GeneratorState::Yielded(15.0));
//! assert_eq!(averager.resume(60.0).unwrap(), GeneratorState::Yielded(30.0));
//! ```
//!
//! Python's rules, and ours:
//!
//! | Python | fiberloop |
//! |---|---|
//! | `next(g)` / `g.send(None)` primes the generator | the first `resume(value)` starts the body, which receives `value` as its second argument |
//! | `x = yield v` | `let x = y.suspend(v);` |
//! | `g.throw(e)` | [`throw`](Generator::throw): the pending `suspend` unwinds the body with `e`, or [`try_suspend`](Yielder::try_suspend) returns it as an `Err` the body may handle |
//! | `g.close()` | [`close`](Generator::close): the body unwinds from its `suspend`, destructors run |
//! | `r = yield from sub` (PEP 380) | `let r = y.yield_from(&mut sub, first);` |
//! | `StopIteration` on a finished generator | `Err(GeneratorError::Completed)`, never a crash |
//!
//! A panic in the body reaches the caller of `resume` (re-raised there) with
//! the generator complete and its stack back in the pool.
//!
//! A generator's body runs outside any fiber: a fiber's blocking call (a
//! socket read, `sleep`) inside it panics, with a message that names the
//! mistake, instead of suspending the fiber from the generator's stack. The
//! panic reaches the caller of `resume`, as any panic in the body does.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};

use corosensei::{Coroutine, CoroutineResult};

use crate::rt::coro as fiber;
use crate::rt::stacks::{self as stack, Stack};
use crate::sys::fault::{self, FaultInfo};

/// What the caller sends into the body at a `suspend`.
///
/// For `S = ()` this is one byte, passed in a register across the switch; the
/// rare thrown error travels in [`THROWN`] instead, because a boxed error in
/// here would make every switch pass a pointer to a value with drop glue
/// (which measured 19 ns per resume instead of the few of a bare switch).
enum Input<S> {
    Send(S),
    Throw,
    Close,
}

thread_local! {
    /// The error of a `throw`, set just before resuming with `Input::Throw`.
    static THROWN: std::cell::Cell<Option<Thrown>> = const { std::cell::Cell::new(None) };
}

fn take_thrown() -> Thrown {
    THROWN
        .with(|t| t.take())
        .expect("Input::Throw comes with an error")
}

/// How the body's root ended: its value, or a caught panic (including the
/// private payloads of `throw` and `close`).
type Exit<R> = Result<R, Box<dyn Any + Send>>;

/// The payload that unwinds a closed generator's body (Python's `GeneratorExit`).
struct GeneratorExit;

/// What a generator did when resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeneratorState<Y, R> {
    /// It suspended with this value.
    Yielded(Y),
    /// Its body returned this value; it is complete.
    Complete(R),
}

/// Why a generator could not be resumed, thrown into or closed.
#[derive(Debug)]
pub enum GeneratorError {
    /// It is complete already (Python raises `StopIteration`).
    Completed,
    /// An error thrown in with [`Generator::throw`] that the body did not
    /// handle: the generator is complete.
    Thrown(Thrown),
    /// The body kept suspending after [`Generator::close`] (Python:
    /// "generator ignored GeneratorExit").
    IgnoredClose,
}

impl fmt::Display for GeneratorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeneratorError::Completed => f.write_str("the generator is complete"),
            GeneratorError::Thrown(e) => {
                write!(f, "the generator did not handle a thrown error: {e}")
            }
            GeneratorError::IgnoredClose => f.write_str("the generator ignored close"),
        }
    }
}

impl Error for GeneratorError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            GeneratorError::Thrown(e) => Some(&*e.0),
            _ => None,
        }
    }
}

/// An error thrown into a generator with [`Generator::throw`].
#[derive(Debug)]
pub struct Thrown(pub Box<dyn Error + Send + Sync>);

impl fmt::Display for Thrown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Error for Thrown {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

/// The body's side of a generator: hands values out and receives values in.
pub struct Yielder<'a, S, Y> {
    inner: &'a corosensei::Yielder<Input<S>, Y>,
}

impl<S, Y> Yielder<'_, S, Y> {
    /// Hands `value` to the caller of `resume` and returns the next value sent
    /// in. If the caller throws instead, the body unwinds from here with the
    /// thrown error (use [`try_suspend`](Self::try_suspend) to handle it); if
    /// the caller closes the generator, the body unwinds from here.
    #[inline]
    pub fn suspend(&self, value: Y) -> S {
        match self.try_suspend(value) {
            Ok(sent) => sent,
            Err(thrown) => panic::resume_unwind(Box::new(thrown)),
        }
    }

    /// Like [`suspend`](Self::suspend), but a thrown error comes back as `Err`,
    /// for the body to handle or to propagate with `?`.
    #[inline]
    pub fn try_suspend(&self, value: Y) -> Result<S, Thrown> {
        match self.inner.suspend(value) {
            Input::Send(sent) => Ok(sent),
            Input::Throw => Err(take_thrown()),
            Input::Close => panic::resume_unwind(Box::new(GeneratorExit)),
        }
    }

    /// Delegates to `sub` (PEP 380's `yield from`): starts it with `first`,
    /// forwards every value it yields out and every value sent in (and every
    /// error thrown in) to it, and returns its return value.
    pub fn yield_from<R2>(&self, sub: &mut Generator<S, Y, R2>, first: S) -> R2 {
        let mut state = sub.resume(first);
        loop {
            match state {
                Ok(GeneratorState::Yielded(value)) => {
                    state = match self.try_suspend(value) {
                        Ok(sent) => sub.resume(sent),
                        Err(thrown) => sub.throw_thrown(thrown),
                    };
                }
                Ok(GeneratorState::Complete(value)) => return value,
                // The sub-generator did not handle a throw: it goes on up.
                Err(GeneratorError::Thrown(thrown)) => panic::resume_unwind(Box::new(thrown)),
                Err(e) => panic!("yield_from: {e}"),
            }
        }
    }
}

impl<S, Y> fmt::Debug for Yielder<'_, S, Y> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").finish_non_exhaustive()
    }
}

/// A stackful generator: a closure that can suspend with values of type `Y`,
/// receives values of type `S`, and finishes with `R`. See the [module
/// docs](self).
///
/// A generator stays on the thread that made it (its stack holds whatever
/// the body put there):
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<fiberloop::generator::Generator<(), u32, ()>>();
/// ```
pub struct Generator<S: 'static, Y: 'static, R: 'static> {
    /// `None` once complete (the stack is back in the pool).
    coroutine: Option<Coroutine<Input<S>, Y, Exit<R>, Stack>>,
    /// Published to the SIGSEGV handler while the body runs.
    fault: FaultInfo,
}

impl<S, Y, R> Generator<S, Y, R> {
    /// A generator running `body` on a pooled stack of the default size.
    ///
    /// # Panics
    /// If no stack can be mapped (see [`with_stack_size`](Self::with_stack_size)).
    pub fn new<F>(body: F) -> Generator<S, Y, R>
    where
        F: FnOnce(&Yielder<'_, S, Y>, S) -> R + 'static,
    {
        Generator::with_stack_size(stack::DEFAULT_STACK_SIZE, body)
            .unwrap_or_else(|e| panic!("fiberloop::generator: {e}"))
    }

    /// A generator running `body` on a pooled stack of at least `size` bytes.
    ///
    /// # Errors
    /// `InvalidInput` for an impossible size; `OutOfMemory` (naming the limit)
    /// when no stack can be mapped.
    pub fn with_stack_size<F>(size: usize, body: F) -> io::Result<Generator<S, Y, R>>
    where
        F: FnOnce(&Yielder<'_, S, Y>, S) -> R + 'static,
    {
        fault::install(); // a generator may run on a thread that never had a loop
        let stack = stack::take(size)?;
        let fault = FaultInfo {
            guard: std::cell::Cell::new(stack.guard()),
            size: std::cell::Cell::new(stack.size()),
            id: 0,
            name: None,
        };
        let coroutine = Coroutine::with_stack(stack, move |inner, first: Input<S>| -> Exit<R> {
            match first {
                Input::Send(first) => {
                    let yielder = Yielder { inner };
                    panic::catch_unwind(AssertUnwindSafe(|| body(&yielder, first)))
                }
                // Thrown into or closed before it started: the body never runs.
                Input::Throw => Err(Box::new(take_thrown())),
                Input::Close => Err(Box::new(GeneratorExit)),
            }
        });
        Ok(Generator {
            coroutine: Some(coroutine),
            fault,
        })
    }

    /// Sends `value` in: the first call starts the body with it, later calls
    /// make the pending `suspend` return it. Returns what the body yielded, or
    /// its return value.
    ///
    /// # Errors
    /// [`GeneratorError::Completed`] if the generator is complete.
    ///
    /// # Panics
    /// Re-raises a panic of the body (the generator is then complete).
    #[inline]
    pub fn resume(&mut self, value: S) -> Result<GeneratorState<Y, R>, GeneratorError> {
        self.drive(Input::Send(value))
    }

    /// Throws `error` in at the pending `suspend` (PEP 342's `throw`): the body
    /// may handle it (with [`Yielder::try_suspend`]) and go on, or not, in which
    /// case the generator completes and the error comes back as
    /// [`GeneratorError::Thrown`].
    pub fn throw(
        &mut self,
        error: impl Into<Box<dyn Error + Send + Sync>>,
    ) -> Result<GeneratorState<Y, R>, GeneratorError> {
        self.throw_thrown(Thrown(error.into()))
    }

    fn throw_thrown(&mut self, thrown: Thrown) -> Result<GeneratorState<Y, R>, GeneratorError> {
        if self.is_complete() {
            return Err(GeneratorError::Completed);
        }
        THROWN.with(|t| t.set(Some(thrown)));
        self.drive(Input::Throw)
    }

    /// Closes the generator: the body unwinds from its pending `suspend`, its
    /// destructors run, and the stack goes back to the pool. Closing a
    /// complete generator does nothing.
    ///
    /// # Errors
    /// [`GeneratorError::IgnoredClose`] if the body caught the unwind and
    /// suspended again (it stays open; dropping it tries again).
    pub fn close(&mut self) -> Result<(), GeneratorError> {
        match self.drive(Input::Close) {
            Ok(GeneratorState::Yielded(_)) => Err(GeneratorError::IgnoredClose),
            Ok(GeneratorState::Complete(_)) | Err(GeneratorError::Completed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// True once the body has returned, panicked, or been closed.
    pub fn is_complete(&self) -> bool {
        self.coroutine.is_none()
    }

    #[inline]
    fn drive(&mut self, input: Input<S>) -> Result<GeneratorState<Y, R>, GeneratorError> {
        let Some(coroutine) = self.coroutine.as_mut() else {
            return Err(GeneratorError::Completed);
        };
        let result = {
            // The body is not a fiber, and a fault in it is this generator's.
            let _outside = fiber::leave_fiber();
            let _fault = Published(fault::replace_running(&self.fault));
            coroutine.resume(input)
        };
        match result {
            CoroutineResult::Yield(value) => Ok(GeneratorState::Yielded(value)),
            CoroutineResult::Return(exit) => {
                if let Some(coroutine) = self.coroutine.take() {
                    stack::give_back(coroutine.into_stack());
                }
                match exit {
                    Ok(value) => Ok(GeneratorState::Complete(value)),
                    Err(payload) => match payload.downcast::<Thrown>() {
                        Ok(thrown) => Err(GeneratorError::Thrown(*thrown)),
                        Err(payload) if payload.is::<GeneratorExit>() => {
                            Err(GeneratorError::Completed)
                        }
                        Err(payload) => panic::resume_unwind(payload),
                    },
                }
            }
        }
    }
}

/// Restores the fault info that was published before a generator ran.
struct Published(*const FaultInfo);

impl Drop for Published {
    fn drop(&mut self) {
        fault::replace_running(self.0);
    }
}

impl<Y, R> Generator<(), Y, R> {
    /// `resume(())`, for generators that take no input (Python's `next(g)`).
    pub fn step(&mut self) -> Result<GeneratorState<Y, R>, GeneratorError> {
        self.resume(())
    }
}

/// A generator that takes no input and returns nothing is an iterator of
/// what it yields (PEP 255).
impl<Y> Iterator for Generator<(), Y, ()> {
    type Item = Y;

    fn next(&mut self) -> Option<Y> {
        match self.resume(()) {
            Ok(GeneratorState::Yielded(value)) => Some(value),
            Ok(GeneratorState::Complete(())) | Err(_) => None,
        }
    }
}

impl<S, Y, R> Drop for Generator<S, Y, R> {
    fn drop(&mut self) {
        // Close it, so the body's destructors run and the stack is reused.
        for _ in 0..16 {
            match self.close() {
                Err(GeneratorError::IgnoredClose) => continue,
                _ => return,
            }
        }
        eprintln!("fiberloop: a generator kept suspending after close; leaking its stack");
        std::mem::forget(self.coroutine.take());
    }
}

impl<S, Y, R> fmt::Debug for Generator<S, Y, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator")
            .field("complete", &self.coroutine.is_none())
            .finish()
    }
}
