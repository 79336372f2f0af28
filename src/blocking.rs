//! Running a blocking call on a helper thread while only the caller waits.
//!
//! Used for name resolution (`getaddrinfo` has no non-blocking form), so that a
//! `TcpStream::connect("example.org:80")` never stalls the loop. Each call gets
//! a short-lived thread; a bounded, configurable pool is planned to replace it.
//! [`unblock`] is the fiber face (the fiber parks), [`unblock_async`] the
//! async face (a future); both wait on the same slot.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

use crate::wait;

/// Where the helper thread leaves its result.
struct Slot<T> {
    value: Mutex<Option<T>>,
    waker: AtomicWaker,
}

impl<T> Slot<T> {
    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<T> {
        self.waker.register(cx.waker());
        match crate::sync::lock(&self.value).take() {
            Some(value) => Poll::Ready(value),
            None => Poll::Pending,
        }
    }
}

/// Starts `f` on a helper thread; its result lands in the returned slot.
fn start<T, F>(f: F) -> io::Result<Arc<Slot<T>>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let slot = Arc::new(Slot {
        value: Mutex::new(None),
        waker: AtomicWaker::new(),
    });
    let theirs = slot.clone();
    std::thread::Builder::new()
        .name("fiberloop-blocking".into())
        .spawn(move || {
            let value = f();
            *crate::sync::lock(&theirs.value) = Some(value);
            theirs.waker.wake();
        })?;
    Ok(slot)
}

/// Runs `f` on a helper thread and waits for its result: the fiber parks, a
/// plain thread simply blocks.
///
/// # Errors
/// If no helper thread can be started, or the fiber is cancelled meanwhile (the
/// helper thread then finishes on its own and its result is dropped).
pub(crate) fn unblock<T, F>(f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if wait::fiber_core().is_none() {
        return Ok(f()); // a plain thread may block
    }
    let slot = start(f)?;
    wait::block_on(None, |cx| slot.poll_take(cx)).map_err(io::Error::from)
}

/// Runs `f` on a helper thread; the future completes with its result.
pub(crate) fn unblock_async<T, F>(f: F) -> Unblock<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    Unblock { slot: start(f) }
}

/// The future of [`unblock_async`].
pub(crate) struct Unblock<T> {
    slot: io::Result<Arc<Slot<T>>>,
}

impl<T> Future for Unblock<T> {
    type Output = io::Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match &mut self.slot {
            Ok(slot) => slot.poll_take(cx).map(Ok),
            Err(e) => Poll::Ready(Err(std::mem::replace(
                e,
                io::Error::other("polled after completion"),
            ))),
        }
    }
}
