//! The driver: one async task per connection that owns the protocol, reads
//! into it, flushes the write buffer and ends with `connection_lost`.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{Protocol, Transport, READ_BUDGET, READ_BUF, READ_CHUNK};

/// The task that runs one connection: reads into the protocol, flushes the
/// write buffer, and delivers `connection_lost` at the end.
pub(super) struct Driver<P> {
    pub(super) transport: Transport,
    pub(super) protocol: P,
    pub(super) done: bool,
}

/// What a step of the driver decided.
pub(super) enum Step {
    /// Go on.
    Continue,
    /// Wait for readiness or a transport call.
    Wait,
    /// The connection ended, with this error if it failed.
    End(Option<io::Error>),
}

impl<P: Protocol> Driver<P> {
    /// Sends buffered bytes and applies `write_eof`/`close`; tells the
    /// protocol about crossed marks.
    fn flush(&mut self, cx: &mut Context<'_>) -> Step {
        let shared = &self.transport.shared;
        let mut state = shared.state.borrow_mut();
        if let Some(error) = state.abort.take() {
            return Step::End(error);
        }
        let guard = shared.endpoint.borrow();
        let Some(endpoint) = guard.as_ref() else {
            return Step::End(None);
        };
        while !state.pending().is_empty() {
            match endpoint.poll_write(cx, state.pending()) {
                Poll::Ready(Ok(n)) => state.consume(n),
                Poll::Ready(Err(e)) => return Step::End(Some(e)),
                Poll::Pending => break,
            }
        }
        let pending = state.pending().len();
        if pending == 0 {
            if state.closing {
                return Step::End(None);
            }
            if state.eof_requested && !state.eof_sent {
                state.eof_sent = true;
                if let Err(e) = endpoint.shutdown(Shutdown::Write) {
                    return Step::End(Some(e));
                }
            }
        }
        // A `write` that crossed the high mark set `pause_due`; deliver it
        // even if the buffer drained since, so pauses and resumes pair up.
        let mut pause = std::mem::take(&mut state.pause_due);
        if !state.writing_paused && pending > state.high {
            state.writing_paused = true; // the marks were lowered
            pause = true;
        }
        let resume = state.writing_paused && pending <= state.low;
        if resume {
            state.writing_paused = false;
        }
        drop(state);
        drop(guard);
        if pause {
            self.protocol.pause_writing();
        }
        if resume {
            self.protocol.resume_writing();
        }
        Step::Continue
    }

    /// One read into the protocol, if reading is on.
    fn read(&mut self, cx: &mut Context<'_>) -> Step {
        let shared = &self.transport.shared;
        {
            let state = shared.state.borrow();
            if !state.reading || state.eof_received || state.closing {
                return Step::Wait;
            }
        }
        // One read buffer per thread, lent to whichever driver reads: the
        // protocol only borrows the bytes, so idle connections hold none.
        let mut buf = READ_BUF
            .with(Cell::take)
            .unwrap_or_else(|| vec![0; READ_CHUNK].into_boxed_slice());
        let read = shared
            .endpoint
            .borrow()
            .as_ref()
            .map(|endpoint| endpoint.poll_read(cx, &mut buf));
        let step = match read {
            None => Step::End(None), // closed under us
            Some(Poll::Pending) => Step::Wait,
            Some(Poll::Ready(Err(e))) => Step::End(Some(e)),
            Some(Poll::Ready(Ok(0))) => {
                shared.state.borrow_mut().eof_received = true;
                if !self.protocol.eof_received() {
                    shared.state.borrow_mut().closing = true;
                }
                Step::Continue
            }
            Some(Poll::Ready(Ok(n))) => {
                self.protocol.data_received(&buf[..n]);
                Step::Continue
            }
        };
        READ_BUF.with(|cell| cell.set(Some(buf)));
        step
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Option<Option<io::Error>> {
        for _ in 0..READ_BUDGET {
            if let Step::End(error) = self.flush(cx) {
                return Some(error);
            }
            match self.read(cx) {
                Step::Continue => {}
                Step::Wait => {
                    // A callback may have written or closed: flush once more.
                    return match self.flush(cx) {
                        Step::End(error) => Some(error),
                        _ => None,
                    };
                }
                Step::End(error) => return Some(error),
            }
        }
        cx.waker().wake_by_ref(); // out of budget: let others run, then go on
        None
    }
}

// The protocol is never pinned: the driver only lends it `&mut`.
impl<P> Unpin for Driver<P> {}

impl<P: Protocol> Future for Driver<P> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(());
        }
        let shared = Rc::clone(&this.transport.shared);
        {
            let mut state = shared.state.borrow_mut();
            if !state
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                state.waker = Some(cx.waker().clone());
            }
        }
        shared.driving.set(true);
        let ended = this.step(cx);
        shared.driving.set(false);
        match ended {
            None => Poll::Pending,
            Some(error) => {
                this.done = true;
                // Release the socket before telling the protocol.
                let endpoint = shared.endpoint.borrow_mut().take();
                drop(endpoint);
                {
                    let mut state = shared.state.borrow_mut();
                    state.waker = None;
                    state.buffer = Vec::new();
                    state.sent = 0;
                }
                this.protocol.connection_lost(error);
                Poll::Ready(())
            }
        }
    }
}

impl<P> Drop for Driver<P> {
    fn drop(&mut self) {
        // Cancelled with its loop: release the socket even while clones of
        // the transport live on.
        if !self.done {
            drop(self.transport.shared.endpoint.borrow_mut().take());
        }
    }
}
