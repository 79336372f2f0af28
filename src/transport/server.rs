//! [`serve`]: accept connections and run a protocol over each, as asyncio's
//! `create_server`.

use std::io;

use crate::async_net;
use crate::net;
use crate::task::Task;

use super::{attach, no_loop_check, Protocol, Stream};

/// A listening socket to [`serve`]: TCP or Unix, from either face.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(async_net::TcpListener),
    /// A Unix-domain listener.
    Unix(async_net::UnixListener),
}

impl From<net::TcpListener> for Listener {
    fn from(listener: net::TcpListener) -> Listener {
        Listener::Tcp(listener.into())
    }
}

impl From<async_net::TcpListener> for Listener {
    fn from(listener: async_net::TcpListener) -> Listener {
        Listener::Tcp(listener)
    }
}

impl From<net::UnixListener> for Listener {
    fn from(listener: net::UnixListener) -> Listener {
        Listener::Unix(listener.into())
    }
}

impl From<async_net::UnixListener> for Listener {
    fn from(listener: async_net::UnixListener) -> Listener {
        Listener::Unix(listener)
    }
}

impl Listener {
    async fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| s.into()),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| s.into()),
        }
    }
}

/// A server started by [`serve`]. Dropping it leaves the server running.
#[derive(Debug)]
pub struct Server {
    acceptor: Task<()>,
}

impl Server {
    /// Stops accepting and closes the listening socket (at the loop's next
    /// turn). Connections already made go on.
    pub fn close(self) {
        self.acceptor.cancel();
    }
}

/// Accepts connections on `listener` and runs a protocol made by `factory`
/// over each, as asyncio's `create_server`. An `accept` that fails (out of
/// descriptors, say) is skipped: the listener backs off by itself.
///
/// # Errors
/// `NotFound` when the thread has no event loop.
pub fn serve<L, F, P>(listener: L, mut factory: F) -> io::Result<Server>
where
    L: Into<Listener>,
    F: FnMut() -> P + 'static,
    P: Protocol,
{
    no_loop_check()?;
    let listener = listener.into();
    let acceptor = crate::task::spawn(async move {
        loop {
            let Ok(stream) = listener.accept().await else {
                continue;
            };
            // A factory that panics costs this connection only (the stream
            // is dropped, so the client sees it closed); so does a
            // `connection_made` that panics (`attach` reports it).
            let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut factory));
            if let Ok(protocol) = made {
                let _ = attach(stream, protocol);
            }
        }
    });
    Ok(Server { acceptor })
}
