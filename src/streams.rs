//! Streams: buffered, line-oriented connections, asyncio's `open_connection`
//! and `start_server` for both models.
//!
//! **Fibers** need little: [`net::TcpStream`] is a
//! `std::io::Read + Write`, so std's [`BufReader`] gives `read_line`,
//! `read_until`, `lines` and `read_exact` as they are, each blocking only the
//! fiber. [`open_connection`] and [`start_server`] hand out that pair: a
//! `BufReader` for reading and the stream itself for writing.
//!
//! **Async tasks** get [`StreamReader`] and [`StreamWriter`] (from
//! [`open_connection_async`] and [`start_server_async`]): `read_line`,
//! `read_until` and `read_exact` futures on one side; on the other, a `write`
//! that only buffers (it never waits, as asyncio's) and a [`drain`]
//! (`StreamWriter::drain`) that waits until the buffer is down to its
//! low-water mark. Both halves share one socket.
//!
//! ```
//! use std::io::{BufRead, Write};
//!
//! fiberloop::run(|| -> std::io::Result<()> {
//!     let server = fiberloop::streams::start_server("127.0.0.1:0", |mut reader, mut writer| {
//!         let mut line = String::new();
//!         while reader.read_line(&mut line)? > 0 {
//!             writer.write_all(line.to_uppercase().as_bytes())?;
//!             line.clear();
//!         }
//!         Ok(())
//!     })?;
//!     let (mut reader, mut writer) = fiberloop::streams::open_connection(server.local_addr())?;
//!     writer.write_all(b"shout\n")?;
//!     let mut line = String::new();
//!     reader.read_line(&mut line)?;
//!     assert_eq!(line, "SHOUT\n");
//!     server.close();
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! [`drain`]: StreamWriter::drain

use std::future::{poll_fn, Future};
use std::io::{self, BufReader};
use std::net::SocketAddr;
use std::pin::Pin;

use futures_io::{AsyncRead, AsyncWrite};

use crate::async_net;
use crate::net::{self, ToSocketAddrs};
use crate::task::Task;
use crate::JoinHandle;

/// Connects to `addr` from a fiber: a buffered reader and a writer over one
/// TCP connection.
///
/// # Errors
/// What [`TcpStream::connect`](net::TcpStream::connect) reports.
pub fn open_connection<A: ToSocketAddrs>(
    addr: A,
) -> io::Result<(BufReader<net::TcpStream>, net::TcpStream)> {
    let stream = net::TcpStream::connect(addr)?;
    Ok((BufReader::new(stream.try_clone()?), stream))
}

/// A listening server whose connections each run a handler (a fiber, or an
/// async task); [`close`](Self::close) stops accepting.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    acceptor: Acceptor,
}

#[derive(Debug)]
enum Acceptor {
    Fiber(JoinHandle<()>),
    Task(Task<()>),
}

impl Server {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes the listening socket (at the loop's next
    /// turn). Connections already being served go on.
    pub fn close(self) {
        match self.acceptor {
            Acceptor::Fiber(handle) => handle.cancel(),
            Acceptor::Task(task) => task.cancel(),
        }
    }
}

/// Listens on `addr` and serves each connection in a fiber running
/// `handler(reader, writer)`; an error it returns closes that connection.
///
/// # Errors
/// What binding the listener reports.
pub fn start_server<A, F>(addr: A, handler: F) -> io::Result<Server>
where
    A: ToSocketAddrs,
    F: Fn(BufReader<net::TcpStream>, net::TcpStream) -> io::Result<()> + Clone + 'static,
{
    let listener = net::TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let acceptor = crate::spawn(move || {
        for stream in listener.incoming() {
            let stream = match stream {
                Ok(stream) => stream,
                // Cancelled by `Server::close`: stop accepting.
                Err(e) if e.get_ref().is_some_and(|e| e.is::<crate::Cancelled>()) => break,
                Err(_) => continue, // a failed accept (EMFILE backs off inside)
            };
            let handler = handler.clone();
            crate::spawn(move || {
                if let Ok(reader) = stream.try_clone() {
                    let _ = handler(BufReader::new(reader), stream);
                }
            });
        }
    });
    Ok(Server {
        addr,
        acceptor: Acceptor::Fiber(acceptor),
    })
}

/// Connects to `addr` from an async task: the reading and writing halves of
/// one TCP connection.
///
/// # Errors
/// What [`TcpStream::connect`](async_net::TcpStream::connect) reports.
pub async fn open_connection_async<A: ToSocketAddrs>(
    addr: A,
) -> io::Result<(StreamReader, StreamWriter)> {
    let stream = async_net::TcpStream::connect(addr).await?;
    Ok(halves(stream))
}

/// Listens on `addr` and serves each connection in an async task running
/// `handler(reader, writer)`.
///
/// # Errors
/// What binding the listener reports.
pub async fn start_server_async<A, F, Fut>(addr: A, handler: F) -> io::Result<Server>
where
    A: ToSocketAddrs,
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let listener = async_net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let acceptor = crate::task::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (reader, writer) = halves(stream);
            crate::task::spawn(handler(reader, writer)).detach();
        }
    });
    Ok(Server {
        addr,
        acceptor: Acceptor::Task(acceptor),
    })
}

fn halves(stream: async_net::TcpStream) -> (StreamReader, StreamWriter) {
    let reader = StreamReader {
        stream: stream.clone(),
        buf: Vec::new(),
        pos: 0,
    };
    let writer = StreamWriter {
        stream,
        buf: Vec::new(),
        high_water: DEFAULT_HIGH_WATER,
        low_water: DEFAULT_HIGH_WATER / 4,
    };
    (reader, writer)
}

/// Read buffer growth step.
const CHUNK: usize = 8 * 1024;

/// The reading half of a connection, for async tasks (asyncio's
/// `StreamReader`).
#[derive(Debug)]
pub struct StreamReader {
    stream: async_net::TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl StreamReader {
    /// Reads more into the buffer; the number of bytes read (0 at end of file).
    async fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let start = self.buf.len();
        self.buf.resize(start + CHUNK, 0);
        let stream = &mut self.stream;
        let target = &mut self.buf[start..];
        let n = poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, target)).await;
        self.buf.truncate(start + *n.as_ref().unwrap_or(&0));
        n
    }

    /// Reads up to and including `byte` into `out`; returns the bytes added
    /// (fewer, without `byte`, at end of file; 0 once at end of file).
    pub async fn read_until(&mut self, byte: u8, out: &mut Vec<u8>) -> io::Result<usize> {
        let mut added = 0;
        loop {
            let pending = &self.buf[self.pos..];
            if let Some(i) = pending.iter().position(|&b| b == byte) {
                out.extend_from_slice(&pending[..=i]);
                self.pos += i + 1;
                return Ok(added + i + 1);
            }
            out.extend_from_slice(pending);
            added += pending.len();
            self.pos = self.buf.len();
            if self.fill().await? == 0 {
                return Ok(added);
            }
        }
    }

    /// Reads a line, newline included, into `out`; 0 at end of file.
    ///
    /// # Errors
    /// `InvalidData` if the line is not UTF-8 (the bytes are consumed).
    pub async fn read_line(&mut self, out: &mut String) -> io::Result<usize> {
        let mut bytes = Vec::new();
        let n = self.read_until(b'\n', &mut bytes).await?;
        let line = String::from_utf8(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "line is not UTF-8"))?;
        out.push_str(&line);
        Ok(n)
    }

    /// Fills `out` exactly.
    ///
    /// # Errors
    /// `UnexpectedEof` if the connection ends first.
    pub async fn read_exact(&mut self, out: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        while filled < out.len() {
            if self.pos == self.buf.len() && self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let n = (out.len() - filled).min(self.buf.len() - self.pos);
            out[filled..filled + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            filled += n;
        }
        Ok(())
    }

    /// Reads what is available (waiting for at least one byte); 0 at end of
    /// file.
    pub async fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() && self.fill().await? == 0 {
            return Ok(0);
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The default high-water mark of a [`StreamWriter`]'s buffer (64 KiB, as
/// asyncio's transports).
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// The writing half of a connection, for async tasks (asyncio's
/// `StreamWriter`): `write` buffers, `drain` waits for the buffer to empty
/// enough.
#[derive(Debug)]
pub struct StreamWriter {
    stream: async_net::TcpStream,
    buf: Vec<u8>,
    high_water: usize,
    low_water: usize,
}

impl StreamWriter {
    /// Buffers `data` without waiting. Call [`drain`](Self::drain) soon after
    /// (at the latest when [`needs_drain`](Self::needs_drain) says so).
    pub fn write(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// True once the buffer has passed the high-water mark.
    pub fn needs_drain(&self) -> bool {
        self.buf.len() > self.high_water
    }

    /// Bytes buffered and not yet sent.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Sets the flow-control marks: [`needs_drain`](Self::needs_drain) turns
    /// true above `high`, and [`drain`](Self::drain) returns once at most
    /// `low` bytes are left (`low` is capped at `high`).
    pub fn set_write_buffer_limits(&mut self, high: usize, low: usize) {
        self.high_water = high;
        self.low_water = low.min(high);
    }

    /// Sends buffered bytes until at most the low-water mark is left (0 by
    /// the time [`close`](Self::close) returns).
    ///
    /// # Errors
    /// What writing to the socket reports (`BrokenPipe` after the peer left).
    pub async fn drain(&mut self) -> io::Result<()> {
        self.flush_to(self.low_water).await
    }

    async fn flush_to(&mut self, left: usize) -> io::Result<()> {
        while self.buf.len() > left {
            let stream = &mut self.stream;
            let buf = &self.buf;
            let n = poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, buf)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.buf.drain(..n);
        }
        Ok(())
    }

    /// Sends everything buffered, then closes the writing direction (the
    /// peer reads end of file).
    ///
    /// # Errors
    /// As [`drain`](Self::drain).
    pub async fn close(mut self) -> io::Result<()> {
        self.flush_to(0).await?;
        let stream = &mut self.stream;
        poll_fn(|cx| Pin::new(&mut *stream).poll_close(cx)).await
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }
}
