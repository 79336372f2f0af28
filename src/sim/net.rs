//! In-memory connections for simulations, as Go's tests use `net.Pipe`: a
//! connected pair of byte streams, and a listener that hands out such
//! pairs. Their waits are the loop's own (channels), so virtual time moves
//! past them; they also work in any loop, and on plain threads.

use std::io::{self, Read, Write};

use crate::sync::{unbounded, Receiver, Sender};

/// One end of an in-memory connection: what one end writes, the other
/// reads, in order. `read` parks the fiber until bytes come (and returns 0
/// once the other end closed its writing half and everything was read);
/// `write` never blocks (the buffer has no bound) and fails with
/// `BrokenPipe` once the other end is gone.
#[derive(Debug)]
pub struct Stream {
    incoming: Receiver<Vec<u8>>,
    outgoing: Option<Sender<Vec<u8>>>,
    /// The chunk being read, and how far.
    chunk: Vec<u8>,
    at: usize,
}

/// A connected pair of in-memory streams.
///
/// ```
/// use std::io::{Read, Write};
///
/// let (mut a, mut b) = fiberloop::sim::pair();
/// a.write_all(b"ping").unwrap();
/// let mut buf = [0; 4];
/// b.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"ping");
/// ```
pub fn pair() -> (Stream, Stream) {
    let (to_b, from_a) = unbounded();
    let (to_a, from_b) = unbounded();
    let end = |incoming, outgoing| Stream {
        incoming,
        outgoing: Some(outgoing),
        chunk: Vec::new(),
        at: 0,
    };
    (end(from_b, to_b), end(from_a, to_a))
}

impl Stream {
    /// Closes the writing half: the other end reads 0 after what was sent.
    pub fn shutdown_write(&mut self) {
        self.outgoing = None;
    }

    /// Copies from the current chunk; 0 if it is used up.
    fn take(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        n
    }

    fn next_chunk(&mut self, chunk: Vec<u8>) {
        self.chunk = chunk;
        self.at = 0;
    }

    /// The async face of [`Read::read`], for async tasks.
    pub async fn read_async(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() && !buf.is_empty() {
            match self.incoming.recv_async().await {
                Ok(chunk) => self.next_chunk(chunk),
                Err(_) => return Ok(0), // the other end closed
            }
        }
        Ok(self.take(buf))
    }

    /// The async face of [`Write::write_all`] (which never waits).
    pub async fn write_all_async(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write_all(buf)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() && !buf.is_empty() {
            match self.incoming.recv() {
                Ok(chunk) => self.next_chunk(chunk),
                Err(_) => return Ok(0), // the other end closed
            }
        }
        Ok(self.take(buf))
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "the other end is closed");
        let outgoing = self.outgoing.as_ref().ok_or_else(closed)?;
        outgoing.send(buf.to_vec()).map_err(|_| closed())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An in-memory listener: [`Connector::connect`] makes a [`pair`] and
/// hands one end to [`accept`](Listener::accept).
#[derive(Debug)]
pub struct Listener {
    incoming: Receiver<Stream>,
    connector: Connector,
}

/// Connects to a [`Listener`]; cheap to clone, and `Send`.
#[derive(Debug, Clone)]
pub struct Connector {
    to_listener: Sender<Stream>,
}

impl Default for Listener {
    fn default() -> Listener {
        Listener::new()
    }
}

impl Listener {
    /// A listener with no connection yet.
    pub fn new() -> Listener {
        let (to_listener, incoming) = unbounded();
        Listener {
            incoming,
            connector: Connector { to_listener },
        }
    }

    /// A connector for clients.
    pub fn connector(&self) -> Connector {
        self.connector.clone()
    }

    /// The next connection, parking the fiber until one comes.
    ///
    /// # Errors
    /// Never while the listener lives (it holds a connector itself).
    pub fn accept(&self) -> io::Result<Stream> {
        self.incoming.recv().map_err(|_| refused())
    }

    /// The async face of [`accept`](Self::accept).
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub async fn accept_async(&self) -> io::Result<Stream> {
        self.incoming.recv_async().await.map_err(|_| refused())
    }
}

impl Connector {
    /// A new connection to the listener.
    ///
    /// # Errors
    /// `ConnectionRefused` if the listener is gone.
    pub fn connect(&self) -> io::Result<Stream> {
        let (client, server) = pair();
        self.to_listener.send(server).map_err(|_| refused())?;
        Ok(client)
    }
}

fn refused() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionRefused, "the listener is gone")
}
