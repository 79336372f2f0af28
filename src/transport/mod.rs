//! Transports and protocols: the callback style of PEP 3156, as a contrast to
//! the fiber and async faces.
//!
//! In this style no code of yours waits. You write a [`Protocol`], a set of
//! callbacks, and the loop calls them: [`connection_made`](Protocol::connection_made)
//! with the connection's [`Transport`], [`data_received`](Protocol::data_received)
//! with each chunk read, [`eof_received`](Protocol::eof_received) when the peer
//! stops sending, and [`connection_lost`](Protocol::connection_lost) once at
//! the end. The transport never blocks either: [`Transport::write`] sends what
//! the socket takes and buffers the rest, and the loop flushes the buffer as
//! the socket drains. Compare `examples/echo_protocol.rs` with
//! `examples/echo_server.rs` (fibers) and `examples/echo_server_async.rs`.
//!
//! ```
//! use fiberloop::net::{TcpListener, TcpStream};
//! use fiberloop::transport::{self, Protocol, Transport};
//! use std::io::{Read, Write};
//!
//! struct Echo(Option<Transport>);
//!
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, transport: &Transport) {
//!         self.0 = Some(transport.clone());
//!     }
//!     fn data_received(&mut self, data: &[u8]) {
//!         let _ = self.0.as_ref().unwrap().write(data);
//!     }
//! }
//!
//! fiberloop::run(|| -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let server = transport::serve(listener, || Echo(None))?;
//!     let mut client = TcpStream::connect(addr)?; // a fiber as the client
//!     client.write_all(b"ping")?;
//!     let mut back = [0; 4];
//!     client.read_exact(&mut back)?;
//!     assert_eq!(&back, b"ping");
//!     server.close();
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! How it runs: each connection is one async task on the loop, the *driver*,
//! which owns the protocol and the socket. It reads while reading is on,
//! calls the protocol, flushes the write buffer, and ends by calling
//! `connection_lost`. Because the driver owns the protocol, callbacks are
//! never re-entered: a callback that crosses a write-buffer mark gets its
//! [`pause_writing`](Protocol::pause_writing) call right after it returns,
//! not from inside `write` as in asyncio.
//!
//! A panic in a callback ends only that connection: its driver task stops,
//! the socket closes (without `connection_lost`), and the loop and the other
//! connections go on. That holds for every callback, `connection_made`
//! included, and for [`serve`]'s protocol factory.
//!
//! A transport belongs to its loop's thread (it is neither `Send` nor
//! `Sync`); fibers and tasks of that loop may use it too.

mod driver;
mod handle;
mod server;
mod stream;

use driver::Driver;
pub use handle::Transport;
pub use server::{serve, Listener, Server};
use stream::Endpoint;
pub use stream::{Peer, Stream};

use std::cell::Cell;
use std::io;

/// The callbacks of one connection, called by the loop in this order:
/// `connection_made` once, then `data_received` any number of times, then
/// `eof_received` at most once, then `connection_lost` once.
pub trait Protocol: 'static {
    /// The connection is up. Keep a clone of `transport` to write later.
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// Bytes arrived. `data` is only lent: copy what you keep.
    fn data_received(&mut self, data: &[u8]);

    /// The peer will send no more. Return `true` to keep the transport open
    /// for writing (close it yourself later); the default `false` closes it,
    /// after the write buffer is flushed.
    fn eof_received(&mut self) -> bool {
        false
    }

    /// The connection is closed: `None` after [`Transport::close`],
    /// [`Transport::abort`] or an EOF that closed it; the error when reading or
    /// writing failed. Called exactly once; the socket is already released.
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }

    /// The write buffer grew past the high-water mark: stop producing until
    /// [`resume_writing`](Self::resume_writing).
    fn pause_writing(&mut self) {}

    /// The write buffer drained to the low-water mark.
    fn resume_writing(&mut self) {}
}

/// The high-water mark a new transport starts with, as asyncio's (64 KiB).
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// How many reads a driver makes before it lets other tasks run.
const READ_BUDGET: usize = 16;

/// The size of the read buffer the drivers of a thread share.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// The shared read buffer, absent while a driver holds it.
    static READ_BUF: Cell<Option<Box<[u8]>>> = const { Cell::new(None) };
}

/// Runs `protocol` over `stream`: calls `connection_made` now, then lets the
/// loop drive it. Returns the transport (the protocol got a clone of it).
///
/// ```
/// use fiberloop::net::UnixStream;
/// use fiberloop::transport::{self, Protocol};
/// use std::io::Read;
///
/// struct Greeter;
/// impl Protocol for Greeter {
///     fn connection_made(&mut self, transport: &transport::Transport) {
///         transport.write(b"hello\n").unwrap();
///         transport.close();
///     }
///     fn data_received(&mut self, _: &[u8]) {}
/// }
///
/// fiberloop::run(|| {
///     let (a, mut b) = UnixStream::pair().unwrap();
///     transport::attach(a, Greeter).unwrap();
///     let mut text = String::new();
///     b.read_to_string(&mut text).unwrap();
///     assert_eq!(text, "hello\n");
/// });
/// ```
///
/// # Errors
/// `NotFound` when the thread has no event loop; `Other` when
/// `connection_made` panicked (the connection is closed then, and nothing
/// else is affected).
pub fn attach<S: Into<Stream>, P: Protocol>(stream: S, mut protocol: P) -> io::Result<Transport> {
    no_loop_check()?;
    let transport = Transport::new(stream.into());
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        protocol.connection_made(&transport);
    }));
    if made.is_err() {
        // As for any callback: this connection ends, nothing else does.
        *transport.shared.endpoint.borrow_mut() = None;
        return Err(io::Error::other(
            "Protocol::connection_made panicked; the connection was closed",
        ));
    }
    crate::task::spawn(Driver {
        transport: transport.clone(),
        protocol,
        done: false,
    })
    .detach();
    Ok(transport)
}

fn no_loop_check() -> io::Result<()> {
    crate::rt::scheduler::with_core(|_| ()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "transports need a fiberloop event loop on this thread",
        )
    })
}
