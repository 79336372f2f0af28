//! Why a join has no value: [`JoinError`].

use std::any::Any;
use std::fmt;

/// Why [`JoinHandle::join`](crate::JoinHandle::join) has no value: the fiber panicked, was cancelled, or
/// could not get a stack.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Panicked(Box<dyn Any + Send + 'static>),
    Cancelled,
    NoStack(std::io::Error),
}

impl JoinError {
    pub(crate) fn panicked(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panicked(payload),
        }
    }

    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn no_stack(error: std::io::Error) -> JoinError {
        JoinError {
            repr: Repr::NoStack(error),
        }
    }

    /// True if the fiber panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panicked(_))
    }

    /// True if the fiber was cancelled (for example at the end of its loop).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The panic payload, as [`std::thread::JoinHandle::join`] returns it, so that
    /// `std::panic::resume_unwind(e.into_panic())` re-raises the panic.
    ///
    /// # Panics
    /// If the fiber did not panic; see [`try_into_panic`](Self::try_into_panic).
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .unwrap_or_else(|e| panic!("`into_panic` on a JoinError that is not a panic: {e}"))
    }

    /// The panic payload if the fiber panicked, or the error back otherwise.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panicked(payload) => Ok(payload),
            repr => Err(JoinError { repr }),
        }
    }

    /// The panic message, when the payload is a string (as `panic!` makes it).
    pub fn panic_message(&self) -> Option<&str> {
        match &self.repr {
            Repr::Panicked(payload) => payload_message(payload.as_ref()),
            _ => None,
        }
    }
}

/// A panic payload's message, when it is a string (as `panic!` makes it).
pub(crate) fn payload_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panicked(_) => match self.panic_message() {
                Some(message) => write!(f, "fiber panicked: {message}"),
                None => f.write_str("fiber panicked"),
            },
            Repr::Cancelled => f.write_str("fiber was cancelled"),
            Repr::NoStack(e) => write!(f, "fiber could not start: {e}"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panicked(_) => write!(f, "JoinError::Panicked({:?})", self.panic_message()),
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::NoStack(e) => write!(f, "JoinError::NoStack({e:?})"),
        }
    }
}

impl std::error::Error for JoinError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.repr {
            Repr::NoStack(e) => Some(e),
            _ => None,
        }
    }
}

/// A stack failure keeps its `io::Error`; a cancellation becomes
/// [`Cancelled`](crate::Cancelled); a panic becomes its message (the payload
/// cannot cross into an `io::Error`, which must be `Sync`).
impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        match e.repr {
            Repr::NoStack(e) => e,
            Repr::Cancelled => std::io::Error::other(crate::Cancelled),
            Repr::Panicked(_) => std::io::Error::other(e.to_string()),
        }
    }
}
