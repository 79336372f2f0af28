//! Why a channel operation failed: the blocking and the `try_` forms, for
//! sending (the message comes back) and receiving.

use std::fmt;

use crate::rt::wait::WaitError;

/// Why a blocking `send` failed; the message comes back in every case.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendError<T> {
    /// Every receiver is gone.
    Disconnected(T),
    /// The deadline passed (`send_timeout`, or an enclosing `fiberloop::timeout`).
    TimedOut(T),
    /// The sending fiber is unwinding (a send in a destructor during a
    /// panic or a cancellation) and may not park.
    Cancelled(T),
}

/// Why `try_send` failed.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The channel is full (or, for a rendezvous, no receiver is waiting).
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// Why a blocking `recv` failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum RecvError {
    /// Every sender is gone and the buffer is drained.
    Disconnected,
    /// The deadline passed (`recv_timeout`, or an enclosing `fiberloop::timeout`).
    TimedOut,
    /// The receiving fiber is unwinding (a receive in a destructor during
    /// a panic or a cancellation) and may not park.
    Cancelled,
}

/// Why `try_recv` failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum TryRecvError {
    /// No message is buffered.
    Empty,
    /// Every sender is gone and the buffer is drained.
    Disconnected,
}

/// `recv_timeout`'s error: the same as [`RecvError`].
pub type RecvTimeoutError = RecvError;
/// `send_timeout`'s error: the same as [`SendError`].
pub type SendTimeoutError<T> = SendError<T>;

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Disconnected(v) | SendError::TimedOut(v) | SendError::Cancelled(v) => v,
        }
    }

    pub(super) fn from_wait(error: WaitError, value: T) -> SendError<T> {
        match error {
            WaitError::TimedOut => SendError::TimedOut(value),
            WaitError::Cancelled => SendError::Cancelled(value),
        }
    }
}

impl RecvError {
    pub(super) fn from_wait(error: WaitError) -> RecvError {
        match error {
            WaitError::TimedOut => RecvError::TimedOut,
            WaitError::Cancelled => RecvError::Cancelled,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Disconnected(_) => "Disconnected(..)",
            SendError::TimedOut(_) => "TimedOut(..)",
            SendError::Cancelled(_) => "Cancelled(..)",
        })
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Disconnected(_) => "sending on a channel with no receivers",
            SendError::TimedOut(_) => "timed out sending on a channel",
            SendError::Cancelled(_) => "the sending fiber is unwinding and may not wait",
        })
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Disconnected(_) => "Disconnected(..)",
        })
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "sending on a full channel",
            TrySendError::Disconnected(_) => "sending on a channel with no receivers",
        })
    }
}

impl<T> std::error::Error for TrySendError<T> {}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecvError::Disconnected => "receiving on an empty channel with no senders",
            RecvError::TimedOut => "timed out receiving on a channel",
            RecvError::Cancelled => "the receiving fiber is unwinding and may not wait",
        })
    }
}

impl std::error::Error for RecvError {}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "receiving on an empty channel",
            TryRecvError::Disconnected => "receiving on an empty channel with no senders",
        })
    }
}

impl std::error::Error for TryRecvError {}

impl From<RecvError> for std::io::Error {
    fn from(e: RecvError) -> std::io::Error {
        match e {
            RecvError::Disconnected => std::io::Error::new(std::io::ErrorKind::BrokenPipe, e),
            RecvError::TimedOut => std::io::Error::new(std::io::ErrorKind::TimedOut, e),
            RecvError::Cancelled => std::io::Error::other(crate::Cancelled),
        }
    }
}
