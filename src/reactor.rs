//! The reactor: one `mio::Poll` per loop, and the plumbing every socket type
//! shares ([`Source`]).
//!
//! # How a blocking-style read works
//!
//! 1. Try the syscall. Data is often there already, and then nothing else
//!    happens: no registration, no lock, no switch.
//! 2. On `WouldBlock`, register the descriptor with this loop's `Poll` if it is
//!    not yet (once, for both directions), store the fiber's waker in the
//!    source's read slot, and park the fiber.
//! 3. When `poll` reports the descriptor readable (or closed, or in error), the
//!    reactor wakes the waker; the fiber retries the syscall from step 1.
//!
//! # Implementation notes
//!
//! - mio is edge-triggered: an event is reported once per readiness change, so
//!   we always operate until `WouldBlock` before parking, and never park without
//!   having seen `WouldBlock` since the last event.
//! - Wakes can be spurious (an event with nothing to read, or the timer of an
//!   I/O timeout not yet due): the retried syscall says `WouldBlock` again and
//!   the fiber parks again. Nothing is remembered between tries, which is what
//!   lets the async face share this code.
//! - Tokens carry a generation in their upper half, so an event for a slot that
//!   was freed and reused never wakes the new owner.
//! - A source is registered with the loop that first waits on it. Moved to
//!   another thread's loop, it is deregistered and registered again there; the
//!   kernel reports current readiness on registration, so nothing is lost.
//!   Used on a plain thread, it waits with `poll(2)` instead.
//!
//! # Portability
//! mio picks epoll on Linux and kqueue on macOS/BSD; the wait outside a loop uses
//! `poll(2)` everywhere.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Token};
use slab::Slab;

use crate::scheduler::{self, Core, Shared};
use crate::sys::{self, Interest};
use crate::wait::{self, WaitError};

/// The token of the loop's cross-thread `mio::Waker`.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

const INDEX_BITS: u32 = 32;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

/// One loop's poller and its table of registered sources.
pub(crate) struct Reactor {
    poll: RefCell<mio::Poll>,
    events: RefCell<Events>,
    sources: RefCell<Slab<Arc<ScheduledIo>>>,
    generation: Cell<usize>,
    /// Wakers collected from one poll, woken after the table borrow ends;
    /// kept to reuse its allocation.
    woken: RefCell<Vec<Waker>>,
}

impl Reactor {
    pub(crate) fn new(poll: mio::Poll) -> Reactor {
        Reactor {
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(1024)),
            sources: RefCell::new(Slab::new()),
            generation: Cell::new(0),
            woken: RefCell::new(Vec::new()),
        }
    }

    /// Waits for events up to `timeout` (`None`: until one arrives) and wakes
    /// the waiters they concern.
    pub(crate) fn poll(&self, timeout: Option<Duration>) {
        let mut events = self.events.borrow_mut();
        if let Err(e) = self.poll.borrow_mut().poll(&mut events, timeout) {
            // EINTR is a normal early return (mio does not retry it for us).
            if e.kind() != io::ErrorKind::Interrupted {
                eprintln!("fiberloop: poll failed: {e}");
            }
            return;
        }
        let mut woken = self.woken.take();
        {
            let sources = self.sources.borrow();
            for event in events.iter() {
                let token = event.token().0;
                if event.token() == WAKER_TOKEN {
                    continue;
                }
                let Some(io) = sources
                    .get(token & INDEX_MASK)
                    .filter(|io| io.token == token)
                else {
                    continue; // a freed or reused slot: stale event
                };
                let read = event.is_readable() || event.is_read_closed() || event.is_error();
                let write = event.is_writable() || event.is_write_closed() || event.is_error();
                io.ready(read, write, &mut woken);
            }
        }
        // Wake outside the table borrow: a waker may run arbitrary code.
        drop(events);
        woken.drain(..).for_each(Waker::wake);
        *self.woken.borrow_mut() = woken;
    }

    /// Registers `fd` for both directions (edge-triggered) with this loop.
    fn register(&self, fd: RawFd, shared: &Arc<Shared>) -> io::Result<Registration> {
        let mut sources = self.sources.borrow_mut();
        let entry = sources.vacant_entry();
        let generation = (self.generation.get() + 1) & (usize::MAX >> (INDEX_BITS + 1));
        self.generation.set(generation);
        let token = entry.key() | (generation << INDEX_BITS);
        let io = Arc::new(ScheduledIo::new(token));
        shared.registry.register(
            &mut SourceFd(&fd),
            Token(token),
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )?;
        entry.insert(io.clone());
        Ok(Registration {
            shared: shared.clone(),
            io,
        })
    }

    /// Frees the slot of a deregistered source.
    pub(crate) fn release(&self, token: usize) {
        let mut sources = self.sources.borrow_mut();
        if sources
            .get(token & INDEX_MASK)
            .is_some_and(|io| io.token == token)
        {
            sources.remove(token & INDEX_MASK);
        }
    }

    /// Number of registered sources.
    pub(crate) fn len(&self) -> usize {
        self.sources.borrow().len()
    }
}

/// Per-source waiters: one waker slot per direction.
pub(crate) struct ScheduledIo {
    token: usize,
    /// The fiber or task waiting in each direction ([read, write]).
    waiters: Mutex<[Option<Waker>; 2]>,
}

impl ScheduledIo {
    fn new(token: usize) -> ScheduledIo {
        ScheduledIo {
            token,
            waiters: Mutex::new([None, None]),
        }
    }

    fn waiters(&self) -> MutexGuard<'_, [Option<Waker>; 2]> {
        // A waker that panicked while we held the lock leaves valid data behind.
        crate::sync::lock(&self.waiters)
    }

    fn ready(&self, read: bool, write: bool, woken: &mut Vec<Waker>) {
        let mut waiters = self.waiters();
        for (dir, hit) in [read, write].into_iter().enumerate() {
            if hit {
                woken.extend(waiters[dir].take());
            }
        }
    }

    /// Leaves `waker` in the slot for `interest`: the next event for that
    /// direction wakes it.
    fn register(&self, interest: Interest, waker: &Waker) {
        match &mut self.waiters()[interest as usize] {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }

    fn clear_waiter(&self, interest: Interest) {
        self.waiters()[interest as usize] = None;
    }
}

/// A source's registration with one loop.
struct Registration {
    shared: Arc<Shared>,
    io: Arc<ScheduledIo>,
}

impl Registration {
    fn deregister(self, fd: RawFd) {
        // Any thread may do this: mio's Registry is thread-safe. The loop frees
        // the slot when it next drains `released`.
        let _ = self.shared.registry.deregister(&mut SourceFd(&fd));
        self.shared.released.push(self.io.token);
    }
}

/// A non-blocking descriptor (`T` is a mio socket) with its two faces:
/// [`poll_io`](Self::poll_io) for async code, [`do_io`](Self::do_io) for
/// fibers and plain threads. The blocking face is the async one driven by the
/// one waiting mechanism (`wait::block_on`), so both behave the same.
pub(crate) struct Source<T: AsRawFd> {
    io: T,
    registration: Mutex<Option<Registration>>,
}

impl<T: AsRawFd> Source<T> {
    pub(crate) fn new(io: T) -> Source<T> {
        Source {
            io,
            registration: Mutex::new(None),
        }
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.io
    }

    /// Runs `op` until it does not say `WouldBlock`; then leaves `cx`'s waker
    /// for the next readiness event and returns `Pending`. No per-call state is
    /// kept, so it suits `AsyncRead`/`AsyncWrite`: a spurious poll just tries
    /// `op` again.
    ///
    /// # Errors
    /// What `op` returns; `NotFound` when polled on a thread without a loop.
    pub(crate) fn poll_io<R>(
        &self,
        interest: Interest,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return Poll::Ready(result),
            }
            // No event can be handled between `op`'s WouldBlock and this
            // registration: both happen on the loop's thread, which handles
            // events only between polls. So the next event finds the waker.
            return match self.register(interest, cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            };
        }
    }

    /// Runs `op` until it does not say `WouldBlock`, blocking between tries:
    /// the fiber (through [`poll_io`](Self::poll_io) and `wait::block_on`), or
    /// the thread outside a loop (with `poll(2)`). `EINTR` is retried. When
    /// `timeout` is set and passes (counted from the first `WouldBlock`), the
    /// error is `TimedOut`.
    pub(crate) fn do_io<R>(
        &self,
        interest: Interest,
        timeout: Option<Duration>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        // The fast path: often the data (or buffer space) is there already.
        loop {
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return result,
            }
        }
        // Read the clock only now that we know we must wait.
        let deadline = timeout.map(crate::time::deadline_after);
        if wait::fiber_core().is_none() {
            // A plain thread: behave like std's blocking sockets.
            loop {
                if !sys::wait_fd(self.io.as_raw_fd(), interest, deadline)? {
                    return Err(WaitError::TimedOut.into());
                }
                match op(&self.io) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    result => return result,
                }
            }
        }
        // The fast path just saw WouldBlock, so the first poll only registers
        // (trying `op` again at once would be a wasted syscall per wait).
        let mut just_tried = true;
        let waited = wait::block_on(deadline, |cx| {
            if std::mem::take(&mut just_tried) {
                if let Err(e) = self.register(interest, cx) {
                    return Poll::Ready(Err(e));
                }
                return Poll::Pending;
            }
            self.poll_io(interest, cx, &mut op)
        });
        match waited {
            Ok(result) => result,
            Err(e) => {
                // Timed out or cancelled: leave no waker behind.
                scheduler::with_core(|core| {
                    self.with_registration(core, |io| io.clear_waiter(interest))
                });
                Err(e.into())
            }
        }
    }

    /// Leaves `cx`'s waker for the next `interest` event on this loop.
    fn register(&self, interest: Interest, cx: &mut Context<'_>) -> io::Result<()> {
        let registered = scheduler::with_core(|core| {
            self.with_registration(core, |io| io.register(interest, cx.waker()))
        });
        registered.unwrap_or_else(|| {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                "fiberloop socket polled on a thread without a fiberloop event loop",
            ))
        })
    }

    /// Runs `f` on this source's registration with `core`'s loop, registering
    /// (or moving the registration from another loop) first if needed.
    fn with_registration<R>(
        &self,
        core: &Core,
        f: impl FnOnce(&ScheduledIo) -> R,
    ) -> io::Result<R> {
        let mut registration = crate::sync::lock(&self.registration);
        match &*registration {
            Some(current) if Arc::ptr_eq(&current.shared, core.shared()) => {}
            _ => {
                if let Some(old) = registration.take() {
                    old.deregister(self.io.as_raw_fd());
                }
                *registration = Some(core.reactor.register(self.io.as_raw_fd(), core.shared())?);
            }
        }
        Ok(f(&registration.as_ref().expect("registered above").io))
    }
}

impl<T: AsRawFd> Drop for Source<T> {
    fn drop(&mut self) {
        let registration = self
            .registration
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(registration) = registration.take() {
            registration.deregister(self.io.as_raw_fd());
        }
    }
}

impl<T: AsRawFd + std::fmt::Debug> std::fmt::Debug for Source<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.io.fmt(f)
    }
}

/// Frees the reactor slots of sources dropped since the last call.
pub(crate) fn drain_released(core: &Core) {
    while let Some(token) = core.shared().released.pop() {
        core.reactor.release(token);
    }
}
