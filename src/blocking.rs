//! Running a blocking call on a helper thread while only the calling fiber waits.
//!
//! Used for name resolution (`getaddrinfo` has no non-blocking form), so that a
//! `TcpStream::connect("example.org:80")` never stalls the loop. Each call gets
//! a short-lived thread; a bounded, configurable pool is planned to replace it.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use atomic_waker::AtomicWaker;

use std::io;

use crate::wait;

struct Slot<T> {
    value: Mutex<Option<T>>,
    waker: AtomicWaker,
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
    let slot = Arc::new(Slot {
        value: Mutex::new(None),
        waker: AtomicWaker::new(),
    });
    let theirs = slot.clone();
    std::thread::Builder::new()
        .name("fiberloop-blocking".into())
        .spawn(move || {
            let value = f();
            *theirs.value.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
            theirs.waker.wake();
        })?;
    wait::block_on(None, |cx| {
        slot.waker.register(cx.waker());
        match slot
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(value) => Poll::Ready(value),
            None => Poll::Pending,
        }
    })
    .map_err(io::Error::from)
}
