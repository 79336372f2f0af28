//! The reactor: one `mio::Poll` per loop, and the plumbing every socket type
//! shares ([`Source`]).
//!
//! # How a blocking-style read works
//!
//! 1. Read the source's readiness tick, then try the syscall. Data is often
//!    there already, and then nothing else happens: no registration, no lock,
//!    no switch.
//! 2. On `WouldBlock`, register the descriptor with this loop's `Poll` if it is
//!    not registered anywhere yet (once, for both directions), add the fiber's
//!    waker to the source's waiters for that direction (unless the tick moved:
//!    then retry at once, see [`waiters`]), and park the fiber.
//! 3. When `poll` reports the descriptor readable (or closed, or in error), the
//!    reactor wakes every reader waiting on it; each retries from step 1.
//!
//! # Sharing
//!
//! Sockets take `&self` and are `Send + Sync`, so any number of fibers, async
//! tasks and loops may wait on either direction of one source at once. The
//! source is registered with one loop: the first that waits on it. That loop's
//! `poll` serves every waiter, those of other loops through their wakers
//! (which queue the task on its own loop). When the registering loop closes,
//! it wakes every waiter of its sources; the next wait from a live loop
//! registers the source there. A waiter on another loop is therefore served
//! only while the registering loop is being run, as with tokio, where a
//! socket belongs to the runtime that registered it.
//!
//! # Implementation notes
//!
//! - mio is edge-triggered: an event is reported once per readiness change, so
//!   we always operate until `WouldBlock` before parking, and never park without
//!   having seen `WouldBlock` since the tick we read.
//! - Wakes can be spurious (an event with nothing to read, another waiter took
//!   the data first, or the timer of an I/O timeout not yet due): the retried
//!   syscall says `WouldBlock` again and the waiter registers again.
//! - Tokens carry a generation in their upper half, so an event for a slot that
//!   was freed and reused never wakes the new owner.
//! - Used on a plain thread with no loop, a source waits with `poll(2)` instead.
//!
//! # Portability
//! mio picks epoll on Linux and kqueue on macOS/BSD; the wait outside a loop uses
//! `poll(2)` everywhere.

pub(crate) mod waiters;

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mio::unix::SourceFd;

use crate::rt::diag::WaitOn;
use mio::{Events, Token};
use slab::Slab;

use crate::rt::scheduler::{self, Core, Shared};
use crate::rt::wait::{self, WaitError};
use crate::sys::{self, Interest};
use waiters::ScheduledIo;

/// The token of the loop's cross-thread `mio::Waker`.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

const INDEX_BITS: u32 = 32;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

/// One registered source in a loop's table: its full token (slot and
/// generation) and its waiters.
struct Entry {
    token: usize,
    io: Arc<ScheduledIo>,
}

/// One loop's poller and its table of registered sources.
pub(crate) struct Reactor {
    poll: RefCell<mio::Poll>,
    events: RefCell<Events>,
    sources: RefCell<Slab<Entry>>,
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
    /// the waiters they concern. Returns how many events came (the poller's
    /// own wake-up included), 0 after a timeout or an interruption.
    pub(crate) fn poll(&self, timeout: Option<Duration>) -> usize {
        let mut events = self.events.borrow_mut();
        if let Err(e) = self.poll.borrow_mut().poll(&mut events, timeout) {
            // EINTR is a normal early return (mio does not retry it for us).
            if e.kind() != io::ErrorKind::Interrupted {
                eprintln!("fiberloop: poll failed: {e}");
            }
            return 0;
        }
        let count = events.iter().count();
        let mut woken = self.woken.take();
        {
            let sources = self.sources.borrow();
            for event in events.iter() {
                let token = event.token().0;
                if event.token() == WAKER_TOKEN {
                    continue;
                }
                let Some(entry) = sources
                    .get(token & INDEX_MASK)
                    .filter(|entry| entry.token == token)
                else {
                    continue; // a freed or reused slot: stale event
                };
                let read = event.is_readable() || event.is_read_closed() || event.is_error();
                let write = event.is_writable() || event.is_write_closed() || event.is_error();
                entry.io.ready(read, write, &mut woken);
            }
        }
        // Wake outside the table borrow: a waker may run arbitrary code.
        drop(events);
        woken.drain(..).for_each(Waker::wake);
        *self.woken.borrow_mut() = woken;
        count
    }

    /// Registers `fd` for both directions (edge-triggered) with this loop.
    fn register(
        &self,
        fd: RawFd,
        io: &Arc<ScheduledIo>,
        shared: &Arc<Shared>,
    ) -> io::Result<Registration> {
        let mut sources = self.sources.borrow_mut();
        let entry = sources.vacant_entry();
        let generation = (self.generation.get() + 1) & (usize::MAX >> (INDEX_BITS + 1));
        self.generation.set(generation);
        let token = entry.key() | (generation << INDEX_BITS);
        shared.registry.register(
            &mut SourceFd(&fd),
            Token(token),
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )?;
        entry.insert(Entry {
            token,
            io: io.clone(),
        });
        Ok(Registration {
            shared: shared.clone(),
            token,
            fd,
        })
    }

    /// Frees the slot of a deregistered source.
    pub(crate) fn release(&self, token: usize) {
        let mut sources = self.sources.borrow_mut();
        if sources
            .get(token & INDEX_MASK)
            .is_some_and(|entry| entry.token == token)
        {
            sources.remove(token & INDEX_MASK);
        }
    }

    /// The loop is closing: wakes every waiter of every source registered
    /// here, so that waiters on other loops retry and register there (the
    /// closed flag in `Shared` tells them this loop is gone).
    pub(crate) fn close(&self) {
        let mut woken = Vec::new();
        for (_, entry) in self.sources.borrow().iter() {
            entry.io.ready(true, true, &mut woken);
        }
        woken.into_iter().for_each(Waker::wake);
    }

    /// Number of registered sources.
    pub(crate) fn len(&self) -> usize {
        self.sources.borrow().len()
    }
}

/// A source's registration with one loop; dropping it deregisters.
struct Registration {
    shared: Arc<Shared>,
    token: usize,
    /// The registered descriptor, open for as long as this registration
    /// lives (it is declared before the socket in `Source`, so it drops first).
    fd: RawFd,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Any thread may do this: mio's Registry is thread-safe. The loop frees
        // the slot when it next drains `released`.
        let _ = self.shared.registry.deregister(&mut SourceFd(&self.fd));
        self.shared.released.push(self.token);
    }
}

impl Registration {
    /// False once the loop it is registered with has closed.
    fn is_live(&self) -> bool {
        !self.shared.closed.is_closed()
    }
}

/// A non-blocking descriptor (`T` is a mio socket) with its two faces:
/// [`poll_io`](Self::poll_io) and [`io_async`](Self::io_async) for async
/// code, [`do_io`](Self::do_io) for fibers and plain threads. The blocking
/// face is the async one driven by the one waiting mechanism
/// (`wait::block_on`), so both behave the same.
pub(crate) struct Source<T: AsRawFd> {
    /// Declared first so that it drops first: the descriptor is deregistered
    /// before `io` closes it.
    registration: Mutex<Option<Registration>>,
    io: T,
    /// The waiters, made at the first wait and kept for the source's life
    /// (across moves between loops).
    waiters: OnceLock<Arc<ScheduledIo>>,
}

impl<T: AsRawFd> Source<T> {
    pub(crate) fn new(io: T) -> Source<T> {
        Source {
            registration: Mutex::new(None),
            io,
            waiters: OnceLock::new(),
        }
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.io
    }

    /// Deregisters the socket and hands it back (for `into_std`).
    pub(crate) fn into_inner(self) -> T {
        let Source {
            registration, io, ..
        } = self;
        drop(registration);
        io
    }

    /// The readiness tick of `interest`, read before a syscall (0 before the
    /// first wait: no event can come before the source is registered).
    #[inline]
    pub(crate) fn tick(&self, interest: Interest) -> usize {
        self.waiters
            .get()
            .map_or(0, |io| io.tick(interest as usize))
    }

    /// Runs `op` until it does not say `WouldBlock`; then leaves `cx`'s waker
    /// among the waiters for the next readiness event and returns `Pending`.
    /// No per-call state is kept, so it suits `AsyncRead`/`AsyncWrite`: a
    /// spurious poll just tries `op` again. (A task that stops polling leaves
    /// its waker until the next event of that direction, as tokio's
    /// `poll_read` does; [`io_async`](Self::io_async) removes it on drop.)
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
            let tick = self.tick(interest);
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return Poll::Ready(result),
            }
            match self.add_waiter(interest, cx.waker(), tick) {
                Ok(true) => return Poll::Pending,
                Ok(false) => continue, // an event came meanwhile: try again
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// `op` as a future: [`poll_io`](Self::poll_io) until it is ready. Dropped
    /// unfinished (a cancelled task, a lost `select`), it removes its waker.
    pub(crate) async fn io_async<R>(
        &self,
        interest: Interest,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut guard = GiveUp {
            source: self,
            interest,
            waker: None,
        };
        let result = std::future::poll_fn(|cx| {
            let polled = self.poll_io(interest, cx, &mut op);
            if polled.is_pending() {
                crate::rt::diag::note_pending(WaitOn::Io {
                    fd: self.io.as_raw_fd(),
                    write: matches!(interest, Interest::Write),
                });
                match &guard.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => guard.waker = Some(cx.waker().clone()),
                }
            }
            polled
        })
        .await;
        guard.waker = None;
        result
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
        match self.try_io(interest, &mut op) {
            Ok(result) => result,
            Err(tick) => self.wait_io(interest, timeout, tick, None, op),
        }
    }

    /// [`do_io`](Self::do_io) for a wait the dump should name as `on`
    /// rather than as a read or write on the descriptor.
    pub(crate) fn do_io_on<R>(
        &self,
        on: WaitOn,
        interest: Interest,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        match self.try_io(interest, &mut op) {
            Ok(result) => result,
            Err(tick) => self.wait_io(interest, None, tick, Some(on), op),
        }
    }

    /// The fast path: often the data (or buffer space) is there already.
    /// The result of `op`, or, once it says `WouldBlock`, the tick read
    /// before that try (for [`wait_io`](Self::wait_io)). `EINTR` is retried.
    #[inline(always)]
    fn try_io<R>(
        &self,
        interest: Interest,
        op: &mut impl FnMut(&T) -> io::Result<R>,
    ) -> Result<io::Result<R>, usize> {
        loop {
            let tick = self.tick(interest);
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(tick),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Ok(result),
            }
        }
    }

    /// The waiting half of [`do_io`](Self::do_io), for a caller that has just
    /// seen `op` say `WouldBlock` after reading `tick` (the libc hooks, which
    /// make their first try without the source).
    #[inline]
    pub(crate) fn wait_io<R>(
        &self,
        interest: Interest,
        timeout: Option<Duration>,
        tick: usize,
        on: Option<WaitOn>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        // Read the clock only now that we know we must wait.
        let deadline = timeout.map(crate::rt::lock::deadline_after);
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
        // However the wait ends other than by success (timed out, or the
        // fiber unwinding), the fiber's waker leaves the waiters.
        let guard = GiveUp {
            source: self,
            interest,
            waker: None,
        };
        // The fast path just saw WouldBlock, so the first poll only registers
        // (trying `op` again at once would be a wasted syscall per wait).
        let mut first = Some(tick);
        let on = on.unwrap_or(WaitOn::Io {
            fd: self.io.as_raw_fd(),
            write: matches!(interest, Interest::Write),
        });
        let waited = wait::block_on(deadline, on, |cx| {
            if let Some(tick) = first.take() {
                match self.add_waiter(interest, cx.waker(), tick) {
                    Ok(true) => return Poll::Pending,
                    Ok(false) => {} // an event came meanwhile: try again now
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            self.poll_io(interest, cx, &mut op)
        });
        match waited {
            Ok(result) => {
                std::mem::forget(guard); // woken by an event: already taken out
                result
            }
            Err(e) => Err(e.into()), // the guard removes the waker
        }
    }

    /// The descriptor is about to be closed, or its number now names another
    /// file: deregisters it and wakes every waiter (they retry their call,
    /// which must then see that the descriptor is gone). The next wait
    /// registers it afresh.
    #[cfg(feature = "hook")]
    pub(crate) fn reset(&self) {
        let registration = crate::rt::lock::lock(&self.registration).take();
        drop(registration); // deregisters while the descriptor is still open
        if let Some(io) = self.waiters.get() {
            let mut woken = Vec::new();
            io.ready(true, true, &mut woken);
            woken.into_iter().for_each(Waker::wake);
        }
    }

    /// Leaves `waker` among the waiters for the next `interest` event,
    /// registering the source with this thread's loop first if it is not
    /// registered with a live loop. False if an event came since `tick`.
    fn add_waiter(&self, interest: Interest, waker: &Waker, tick: usize) -> io::Result<bool> {
        let io = self.registered()?;
        Ok(io.add_waiter(interest as usize, waker, tick))
    }

    /// The waiters, after making sure the source is registered with a live
    /// loop (this thread's, if it is registered nowhere or with a closed one).
    fn registered(&self) -> io::Result<&Arc<ScheduledIo>> {
        let io = self.waiters.get_or_init(|| Arc::new(ScheduledIo::new()));
        let mut registration = crate::rt::lock::lock(&self.registration);
        if registration.as_ref().is_some_and(Registration::is_live) {
            return Ok(io);
        }
        let registered = scheduler::with_core(|core| {
            drop(registration.take()); // deregisters from the closed loop
            core.reactor
                .register(self.io.as_raw_fd(), io, core.shared())
        });
        match registered {
            Some(Ok(new)) => {
                *registration = Some(new);
                Ok(io)
            }
            Some(Err(e)) => Err(e),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "fiberloop socket polled on a thread without a fiberloop event loop",
            )),
        }
    }
}

/// Parks the calling fiber until `check` says ready, waiting between tries
/// for the next event of any of `sources` (each for its interest): the
/// several-descriptor wait of `poll(2)` in a fiber. `check` must not block;
/// `Ok(None)` means nothing is ready yet. Each source's tick is read before
/// `check`, so an event between `check` and parking is never missed.
///
/// # Errors
/// What `check` returns; a source that cannot be registered (`EPERM` for a
/// regular file); [`WaitError`] when `deadline` passes or the fiber unwinds.
#[cfg(feature = "hook")]
pub(crate) fn wait_any<T: AsRawFd, R>(
    sources: &[(&Source<T>, Interest)],
    deadline: Option<std::time::Instant>,
    mut check: impl FnMut() -> io::Result<Option<R>>,
) -> Result<io::Result<R>, WaitError> {
    /// Takes the fiber's waker out of every list on every way out.
    struct GiveUpAll<'a, T: AsRawFd> {
        sources: &'a [(&'a Source<T>, Interest)],
        waker: Option<Waker>,
    }
    impl<T: AsRawFd> Drop for GiveUpAll<'_, T> {
        fn drop(&mut self) {
            let Some(waker) = self.waker.take() else {
                return;
            };
            for (source, interest) in self.sources {
                if let Some(io) = source.waiters.get() {
                    io.remove_waiter(*interest as usize, &waker);
                }
            }
        }
    }
    let mut guard = GiveUpAll {
        sources,
        waker: None,
    };
    let mut ticks = Vec::with_capacity(sources.len());
    let on = WaitOn::Poll { fds: sources.len() };
    wait::block_on(deadline, on, |cx| loop {
        ticks.clear();
        ticks.extend(
            sources
                .iter()
                .map(|(source, interest)| source.tick(*interest)),
        );
        match check() {
            Ok(None) => {}
            Ok(Some(ready)) => return Poll::Ready(Ok(ready)),
            Err(e) => return Poll::Ready(Err(e)),
        }
        guard.waker.get_or_insert_with(|| cx.waker().clone());
        let mut again = false;
        for ((source, interest), tick) in sources.iter().zip(&ticks) {
            match source.add_waiter(*interest, cx.waker(), *tick) {
                Ok(true) => {}
                Ok(false) => again = true, // an event came meanwhile
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        if !again {
            return Poll::Pending;
        }
    })
}

/// Removes a waiter that gives up from its source's list when dropped:
/// `waker` if set, else the running fiber's.
struct GiveUp<'a, T: AsRawFd> {
    source: &'a Source<T>,
    interest: Interest,
    waker: Option<Waker>,
}

impl<T: AsRawFd> Drop for GiveUp<'_, T> {
    fn drop(&mut self) {
        let Some(io) = self.source.waiters.get() else {
            return;
        };
        match self.waker.take() {
            Some(waker) => io.remove_waiter(self.interest as usize, &waker),
            None => {
                scheduler::with_core(|core| {
                    if let Some(waker) = core.current_waker() {
                        io.remove_waiter(self.interest as usize, &waker);
                    }
                });
            }
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
