//! Multi-producer, multi-consumer channels: [`bounded`] (capacity 0 is a
//! rendezvous, as in Go) and [`unbounded`].
//!
//! Closing follows crossbeam-channel: once every [`Sender`] is dropped, `recv`
//! returns the buffered messages and then [`RecvError::Disconnected`]; once
//! every [`Receiver`] is dropped, `send` fails with
//! [`SendError::Disconnected`], handing the message back, and the buffered
//! messages are dropped. Iterating a receiver ends when the channel is
//! disconnected and drained.
//!
//! ```
//! use fiberloop::sync;
//!
//! fiberloop::run(|| {
//!     let (tx, rx) = sync::bounded(1);
//!     let producer = fiberloop::spawn(move || {
//!         for i in 0..5 {
//!             tx.send(i).unwrap(); // blocks this fiber while the buffer is full
//!         }
//!     }); // tx dropped: the channel closes
//!     let got: Vec<i32> = rx.iter().collect();
//!     producer.join().unwrap();
//!     assert_eq!(got, [0, 1, 2, 3, 4]);
//! });
//! ```
//!
//! A rendezvous (`bounded(0)`) send completes once a receiver is waiting to
//! take the message: the message is then committed to that receiver's turn
//! (if the receiver gives up in between, the next receiver gets it).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::{block, deadline_after, wake_all, Op, SpinLock, WaitOn, WaitQueue};

mod error;

pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

/// A channel that holds at most `capacity` messages; `send` blocks while it is
/// full. `bounded(0)` is a rendezvous channel.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    channel(Some(capacity))
}

/// A channel without a limit; `send` never blocks.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    channel(None)
}

fn channel<T>(capacity: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        state: SpinLock::new(State {
            buf: VecDeque::with_capacity(capacity.unwrap_or(0).min(1024)),
            capacity,
            senders: 1,
            receivers: 1,
            recv_q: WaitQueue::default(),
            send_q: WaitQueue::default(),
        }),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

struct Chan<T> {
    /// Held for a few instructions at a time, never across a wait or a wake.
    state: SpinLock<State<T>>,
}

struct State<T> {
    buf: VecDeque<T>,
    capacity: Option<usize>,
    senders: usize,
    receivers: usize,
    /// Receivers waiting for a message.
    recv_q: WaitQueue,
    /// Senders waiting for room.
    send_q: WaitQueue,
}

impl<T> State<T> {
    fn has_room(&self) -> bool {
        match self.capacity {
            None => true,
            // Rendezvous: room for one message per receiver already waiting.
            Some(0) => self.buf.len() < self.recv_q.len(),
            Some(capacity) => self.buf.len() < capacity,
        }
    }
}

/// The sending side. Clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving side. Clone it for more consumers (each message goes to one).
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `value`, blocking the fiber (or thread) while the channel is full.
    ///
    /// # Errors
    /// [`SendError`], with the message, if every receiver is gone, the fiber
    /// is unwinding (and may not park), or an enclosing
    /// [`timeout`](crate::timeout) expires.
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.send_until(value, None)
    }

    /// Like [`send`](Self::send), giving up with `TimedOut` after `timeout`.
    ///
    /// # Errors
    /// See [`send`](Self::send).
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendError<T>> {
        self.send_until(value, Some(deadline_after(timeout)))
    }

    #[inline(always)] // keeps the stack switch in the caller's frame: docs/benchmarks.md
    fn send_until(
        &self,
        value: T,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), SendError<T>> {
        // Most sends find room: skip the waiting machinery then.
        let value = match self.try_send(value) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(value)) => return Err(SendError::Disconnected(value)),
            Err(TrySendError::Full(value)) => value,
        };
        let mut op = SendOp {
            chan: &self.chan,
            value: Some(value),
            reg: None,
        };
        match block(&mut op, deadline) {
            Ok(result) => result,
            Err(e) => Err(SendError::from_wait(e, op.value.take().expect("not sent"))),
        }
    }

    /// Sends without blocking.
    ///
    /// # Errors
    /// [`TrySendError::Full`] if there is no room, `Disconnected` if every
    /// receiver is gone; the message comes back.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut state = self.chan.state.lock();
        if state.receivers == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        if !state.has_room() {
            return Err(TrySendError::Full(value));
        }
        state.buf.push_back(value);
        let receiver = state.recv_q.pop();
        drop(state);
        wake(receiver);
        Ok(())
    }

    /// The async face of [`send`](Self::send).
    pub fn send_async(&self, value: T) -> SendFuture<'_, T> {
        SendFuture {
            op: SendOp {
                chan: &self.chan,
                value: Some(value),
                reg: None,
            },
        }
    }

    /// Messages buffered now.
    pub fn len(&self) -> usize {
        self.chan.state.lock().buf.len()
    }

    /// True if no message is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity (`None` when unbounded).
    pub fn capacity(&self) -> Option<usize> {
        self.chan.state.lock().capacity
    }

    /// True once every receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        self.chan.state.lock().receivers == 0
    }
}

impl<T> Receiver<T> {
    /// Receives a message, blocking the fiber (or thread) until one arrives.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once every sender is gone and the buffer is
    /// drained; `Cancelled`/`TimedOut` as every blocking call.
    #[inline]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_until(None)
    }

    /// Like [`recv`](Self::recv), giving up with `TimedOut` after `timeout`.
    ///
    /// # Errors
    /// See [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.recv_until(Some(deadline_after(timeout)))
    }

    #[inline(always)] // keeps the stack switch in the caller's frame: docs/benchmarks.md
    fn recv_until(&self, deadline: Option<std::time::Instant>) -> Result<T, RecvError> {
        let mut op = RecvOp {
            chan: &self.chan,
            reg: None,
        };
        block(&mut op, deadline).unwrap_or_else(|e| Err(RecvError::from_wait(e)))
    }

    /// Receives without blocking.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] or, once disconnected and drained, `Disconnected`.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut state = self.chan.state.lock();
        match state.buf.pop_front() {
            Some(value) => {
                let sender = state.send_q.pop();
                drop(state);
                wake(sender);
                Ok(value)
            }
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The async face of [`recv`](Self::recv).
    pub fn recv_async(&self) -> RecvFuture<'_, T> {
        RecvFuture {
            op: RecvOp {
                chan: &self.chan,
                reg: None,
            },
        }
    }

    /// A blocking iterator over received messages; it ends when the channel
    /// is disconnected and drained (or the fiber is unwinding).
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// An iterator over the messages buffered now, without blocking.
    pub fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }

    /// Messages buffered now.
    pub fn len(&self) -> usize {
        self.chan.state.lock().buf.len()
    }

    /// True if no message is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once every sender is gone.
    pub fn is_disconnected(&self) -> bool {
        self.chan.state.lock().senders == 0
    }

    pub(crate) fn recv_op(&self) -> RecvOp<'_, T> {
        RecvOp {
            chan: &self.chan,
            reg: None,
        }
    }
}

impl<T> Sender<T> {
    pub(crate) fn send_op(&self, value: T) -> SendOp<'_, T> {
        SendOp {
            chan: &self.chan,
            value: Some(value),
            reg: None,
        }
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    /// Consumes the receiver: an iterator that ends when the channel is
    /// disconnected and drained.
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { receiver: self }
    }
}

/// The iterator of `Receiver::into_iter`: blocks for each message, ends when
/// the channel is disconnected and drained.
#[derive(Debug)]
pub struct IntoIter<T> {
    receiver: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.recv().ok()
    }
}

#[inline]
fn wake(waiter: Option<(u64, Waker)>) {
    if let Some((_, waker)) = waiter {
        waker.wake();
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.chan.state.lock().senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        self.chan.state.lock().receivers += 1;
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.chan.state.lock();
        state.senders -= 1;
        let receivers = if state.senders == 0 {
            state.recv_q.take_all()
        } else {
            Vec::new()
        };
        drop(state);
        wake_all(receivers); // they see the disconnection
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.chan.state.lock();
        state.receivers -= 1;
        let (senders, dropped) = if state.receivers == 0 {
            (state.send_q.take_all(), std::mem::take(&mut state.buf))
        } else {
            (Vec::new(), VecDeque::new())
        };
        drop(state);
        drop(dropped); // messages nobody can receive, dropped outside the lock
        wake_all(senders);
    }
}

/// A pending receive: the poll function behind `recv`, `recv_async` and
/// `Select::recv`.
pub(crate) struct RecvOp<'a, T> {
    chan: &'a Chan<T>,
    reg: Option<u64>,
}

impl<T> Op for RecvOp<'_, T> {
    type Output = Result<T, RecvError>;

    fn wait_on(&self) -> WaitOn {
        WaitOn::Recv {
            channel: std::ptr::from_ref(self.chan).addr(),
        }
    }

    fn poll_op(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, RecvError>> {
        let mut state = self.chan.state.lock();
        if let Some(value) = state.buf.pop_front() {
            state.recv_q.remove(&mut self.reg);
            let sender = state.send_q.pop(); // room freed
            drop(state);
            wake(sender);
            return Poll::Ready(Ok(value));
        }
        if state.senders == 0 {
            state.recv_q.remove(&mut self.reg);
            return Poll::Ready(Err(RecvError::Disconnected));
        }
        state.recv_q.register(&mut self.reg, cx.waker());
        // A waiting receiver is room for a rendezvous sender.
        let sender = if state.capacity == Some(0) {
            state.send_q.pop()
        } else {
            None
        };
        drop(state);
        wake(sender);
        Poll::Pending
    }
}

impl<T> Drop for RecvOp<'_, T> {
    fn drop(&mut self) {
        if self.reg.is_none() {
            return;
        }
        let mut state = self.chan.state.lock();
        let was_queued = state.recv_q.remove(&mut self.reg);
        // Woken for a message we will not take: pass the turn on.
        let next = if !was_queued && !state.buf.is_empty() {
            state.recv_q.pop()
        } else {
            None
        };
        drop(state);
        wake(next);
    }
}

/// A pending send: the poll function behind `send`, `send_async` and
/// `Select::send`.
pub(crate) struct SendOp<'a, T> {
    chan: &'a Chan<T>,
    value: Option<T>,
    reg: Option<u64>,
}

impl<T> Op for SendOp<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn wait_on(&self) -> WaitOn {
        WaitOn::Send {
            channel: std::ptr::from_ref(self.chan).addr(),
        }
    }

    fn poll_op(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError<T>>> {
        let mut state = self.chan.state.lock();
        if state.receivers == 0 {
            state.send_q.remove(&mut self.reg);
            let value = self
                .value
                .take()
                .expect("a send op is polled until it completes");
            return Poll::Ready(Err(SendError::Disconnected(value)));
        }
        if state.has_room() {
            state.send_q.remove(&mut self.reg);
            state.buf.push_back(
                self.value
                    .take()
                    .expect("a send op is polled until it completes"),
            );
            let receiver = state.recv_q.pop();
            drop(state);
            wake(receiver);
            return Poll::Ready(Ok(()));
        }
        state.send_q.register(&mut self.reg, cx.waker());
        Poll::Pending
    }
}

impl<T> Drop for SendOp<'_, T> {
    fn drop(&mut self) {
        if self.reg.is_none() {
            return;
        }
        let mut state = self.chan.state.lock();
        let was_queued = state.send_q.remove(&mut self.reg);
        // Woken for room we will not use: pass the turn on.
        let next = if !was_queued && state.has_room() {
            state.send_q.pop()
        } else {
            None
        };
        drop(state);
        wake(next);
    }
}

/// The future of [`Sender::send_async`].
#[must_use = "futures do nothing unless polled"]
pub struct SendFuture<'a, T> {
    op: SendOp<'a, T>,
}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        super::poll_noted(&mut self.op, cx)
    }
}

impl<T> Unpin for SendFuture<'_, T> {}

/// The future of [`Receiver::recv_async`].
#[must_use = "futures do nothing unless polled"]
pub struct RecvFuture<'a, T> {
    op: RecvOp<'a, T>,
}

impl<T> Future for RecvFuture<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        super::poll_noted(&mut self.op, cx)
    }
}

impl<T> Unpin for RecvFuture<'_, T> {}

/// The old name of [`SendFuture`].
#[deprecated(note = "renamed to `SendFuture`: `Send` shadowed the `Send` trait")]
pub type Send<'a, T> = SendFuture<'a, T>;

/// The old name of [`RecvFuture`].
#[deprecated(note = "renamed to `RecvFuture`, next to `SendFuture`")]
pub type Recv<'a, T> = RecvFuture<'a, T>;

macro_rules! debug_opaque {
    ($($t:ident),*) => {$(
        impl<T> fmt::Debug for $t<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t)).finish_non_exhaustive()
            }
        }
    )*};
}
debug_opaque!(Sender, Receiver);

impl<T> fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Send").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for RecvFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").finish_non_exhaustive()
    }
}
