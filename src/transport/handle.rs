//! [`Transport`]: the handle a protocol writes through, with its write
//! buffer, flow-control marks and close/abort state.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::Rc;
use std::task::Waker;

use super::{Endpoint, Peer, Stream, DEFAULT_HIGH_WATER};

/// The loop's handle on one connection, given to the protocol in
/// [`Protocol::connection_made`](super::Protocol::connection_made). Clones share the connection.
#[derive(Clone)]
pub struct Transport {
    pub(super) shared: Rc<Shared>,
}

pub(super) struct Shared {
    /// The socket; taken (and so closed) when the connection ends.
    pub(super) endpoint: RefCell<Option<Box<dyn Endpoint>>>,
    pub(super) state: RefCell<State>,
    peer: Peer,
    /// Set while the driver runs: wakes from inside it are not needed.
    pub(super) driving: Cell<bool>,
}

pub(super) struct State {
    /// Bytes accepted by `write` and not yet sent: `buffer[sent..]`.
    pub(super) buffer: Vec<u8>,
    pub(super) sent: usize,
    pub(super) high: usize,
    pub(super) low: usize,
    /// The buffer passed the high mark and has not drained to the low one.
    pub(super) writing_paused: bool,
    /// `pause_writing` is owed to the protocol (a `write` crossed the mark).
    pub(super) pause_due: bool,
    pub(super) reading: bool,
    pub(super) eof_received: bool,
    /// `close` was called: flush, then end.
    pub(super) closing: bool,
    /// `write_eof` was called: flush, then shut down the write half.
    pub(super) eof_requested: bool,
    pub(super) eof_sent: bool,
    /// `abort` was called, or a write failed: end now.
    pub(super) abort: Option<Option<io::Error>>,
    pub(super) waker: Option<Waker>,
}

impl State {
    pub(super) fn pending(&self) -> &[u8] {
        &self.buffer[self.sent..]
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.sent += n;
        if self.sent == self.buffer.len() {
            self.buffer.clear();
            self.sent = 0;
        } else if self.sent > self.buffer.len() / 2 {
            self.buffer.drain(..self.sent);
            self.sent = 0;
        }
    }
}

impl Transport {
    pub(super) fn new(stream: Stream) -> Transport {
        Transport {
            shared: Rc::new(Shared {
                endpoint: RefCell::new(Some(stream.endpoint)),
                state: RefCell::new(State {
                    buffer: Vec::new(),
                    sent: 0,
                    high: DEFAULT_HIGH_WATER,
                    low: DEFAULT_HIGH_WATER / 4,
                    writing_paused: false,
                    pause_due: false,
                    reading: true,
                    eof_received: false,
                    closing: false,
                    eof_requested: false,
                    eof_sent: false,
                    abort: None,
                    waker: None,
                }),
                peer: stream.peer,
                driving: Cell::new(false),
            }),
        }
    }

    /// Wakes the driver, unless it is the caller.
    fn kick(&self, state: &State) {
        if !self.shared.driving.get() {
            if let Some(waker) = &state.waker {
                waker.wake_by_ref();
            }
        }
    }

    /// Sends `data`, or as much as the socket takes now, and buffers the rest
    /// for the loop to send; never waits. A failure to send ends the
    /// connection and reaches the protocol as `connection_lost(Some(error))`.
    ///
    /// # Errors
    /// `BrokenPipe` when the transport is closing or closed, or its write half
    /// was shut with [`write_eof`](Self::write_eof): the data was not taken.
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        let mut state = self.shared.state.borrow_mut();
        if state.closing || state.eof_requested || state.abort.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write on a closing transport",
            ));
        }
        let endpoint = self.shared.endpoint.borrow();
        let Some(endpoint) = endpoint.as_ref() else {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write on a closed transport",
            ));
        };
        let mut data = data;
        if state.pending().is_empty() {
            match endpoint.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    state.abort = Some(Some(e));
                    self.kick(&state);
                    return Ok(());
                }
            }
        }
        if !data.is_empty() {
            state.buffer.extend_from_slice(data);
            if !state.writing_paused && state.pending().len() > state.high {
                state.writing_paused = true;
                state.pause_due = true;
            }
            self.kick(&state);
        }
        Ok(())
    }

    /// Sends everything buffered, then shuts down the write half (the peer
    /// reads EOF); reading goes on.
    pub fn write_eof(&self) {
        let mut state = self.shared.state.borrow_mut();
        state.eof_requested = true;
        self.kick(&state);
    }

    /// Stops reading, sends everything buffered, then closes the connection
    /// and calls `connection_lost(None)`.
    pub fn close(&self) {
        let mut state = self.shared.state.borrow_mut();
        state.closing = true;
        self.kick(&state);
    }

    /// Closes the connection now, dropping whatever is buffered, and calls
    /// `connection_lost(None)`.
    pub fn abort(&self) {
        let mut state = self.shared.state.borrow_mut();
        if state.abort.is_none() {
            state.abort = Some(None);
        }
        self.kick(&state);
    }

    /// Whether the transport is closing or closed.
    pub fn is_closing(&self) -> bool {
        let state = self.shared.state.borrow();
        state.closing || state.abort.is_some() || self.shared.endpoint.borrow().is_none()
    }

    /// Stops calling `data_received` until [`resume_reading`](Self::resume_reading);
    /// the kernel buffers what arrives meanwhile and, once full, the peer's
    /// writes wait (TCP flow control).
    pub fn pause_reading(&self) {
        self.shared.state.borrow_mut().reading = false;
    }

    /// Resumes reading after [`pause_reading`](Self::pause_reading).
    pub fn resume_reading(&self) {
        let mut state = self.shared.state.borrow_mut();
        state.reading = true;
        self.kick(&state);
    }

    /// Whether the transport is reading (not paused).
    pub fn is_reading(&self) -> bool {
        self.shared.state.borrow().reading
    }

    /// How many bytes wait in the write buffer.
    pub fn write_buffer_size(&self) -> usize {
        self.shared.state.borrow().pending().len()
    }

    /// Sets the write buffer's marks: past `high` bytes the protocol gets
    /// `pause_writing`, and at `low` or below `resume_writing`. `None` for
    /// `high` means [`DEFAULT_HIGH_WATER`]; `None` for `low` means `high / 4`
    /// (asyncio's rules).
    ///
    /// # Errors
    /// `InvalidInput` when `low` exceeds `high`.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        let high = high.unwrap_or(DEFAULT_HIGH_WATER);
        let low = low.unwrap_or(high / 4);
        if low > high {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("low-water mark {low} exceeds high-water mark {high}"),
            ));
        }
        let mut state = self.shared.state.borrow_mut();
        state.high = high;
        state.low = low;
        self.kick(&state); // the protocol may now be past a mark
        Ok(())
    }

    /// Whether the write buffer is past the high mark (and has not drained to
    /// the low one): the state `pause_writing`/`resume_writing` report. Those
    /// calls come after the callback that crossed the mark returns, so a
    /// callback writing in a loop checks this instead.
    pub fn is_writing_paused(&self) -> bool {
        self.shared.state.borrow().writing_paused
    }

    /// The marks: `(low, high)`, as asyncio's `get_write_buffer_limits`.
    pub fn write_buffer_limits(&self) -> (usize, usize) {
        let state = self.shared.state.borrow();
        (state.low, state.high)
    }

    /// The peer's address.
    pub fn peer(&self) -> &Peer {
        &self.shared.peer
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("peer", &self.shared.peer)
            .field("closing", &self.is_closing())
            .field("write_buffer_size", &self.write_buffer_size())
            .finish()
    }
}
