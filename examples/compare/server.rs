//! The servers under test, one per model, each run in a child process: an
//! echo server, and the "deep" server whose request parser blocks twenty
//! calls down. The blocking-style handlers are ordinary functions shared by
//! fibers, threads and may; the async ones are shared by fiberloop's async
//! model and tokio.

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::model::{self, Model};

/// Connections whose handler has started (and is about to read).
pub static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// What a server does with a connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Proto {
    /// Write back whatever arrives.
    Echo,
    /// Parse nested requests `[[..[N]..]]\n` recursively; answer `N + depth\n`.
    Deep,
}

impl Proto {
    /// The protocol's name on the child's command line.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Echo => "echo",
            Proto::Deep => "deep",
        }
    }

    /// The protocol called `name`.
    pub fn parse(name: &str) -> Option<Proto> {
        [Proto::Echo, Proto::Deep]
            .into_iter()
            .find(|p| p.name() == name)
    }

    /// Why `model` has no server for this protocol, if it has none.
    pub fn unsupported(self, model: Model) -> Option<&'static str> {
        (self == Proto::Deep && matches!(model, Model::Callbacks | Model::Mio))
            .then_some("a hand-written parser state machine is out of scope")
    }
}

/// Starts the `model` server for `proto` on a thread; returns its port.
pub fn start(model: Model, proto: Proto) -> io::Result<u16> {
    let (port_tx, port_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("{}-server", model.name()))
        .spawn(move || serve(model, proto, port_tx))?;
    port_rx
        .recv()
        .map_err(|_| io::Error::other("server thread failed to start"))?
}

type PortTx = mpsc::Sender<io::Result<u16>>;

/// Sends the bound listener's port (or the error) to `start`; the listener
/// if all went well.
fn announce<L>(
    tx: &PortTx,
    bound: io::Result<L>,
    local: impl FnOnce(&L) -> io::Result<std::net::SocketAddr>,
) -> Option<L> {
    match bound.and_then(|l| local(&l).map(|a| (l, a.port()))) {
        Ok((listener, port)) => {
            tx.send(Ok(port)).ok()?;
            Some(listener)
        }
        Err(e) => {
            let _ = tx.send(Err(e));
            None
        }
    }
}

fn serve(model: Model, proto: Proto, tx: PortTx) {
    let addr = "127.0.0.1:0";
    match model {
        Model::Fibers => fiberloop::run(move || {
            let bound = fiberloop::net::TcpListener::bind(addr);
            let Some(listener) = announce(&tx, bound, |l| l.local_addr()) else {
                return;
            };
            while let Ok((stream, _)) = listener.accept() {
                fiberloop::spawn(move || handle_blocking(proto, stream, |s| s.set_nodelay(true)));
            }
        }),
        Model::FibersMt => {
            // A SO_REUSEPORT listener per loop, the handler unchanged.
            let rt = model::fibers_mt();
            let bound = rt.handle().listen_each_loop(
                addr.parse().expect("a socket address"),
                move |listener| {
                    while let Ok((stream, _)) = listener.accept() {
                        fiberloop::spawn(move || {
                            handle_blocking(proto, stream, |s| s.set_nodelay(true))
                        });
                    }
                },
            );
            let Some((_, servers)) = announce(&tx, bound, |(addr, _)| Ok(*addr)) else {
                return;
            };
            for server in servers {
                let _ = server.join();
            }
        }
        Model::Async => fiberloop::block_on(async move {
            let bound = fiberloop::async_net::TcpListener::bind(addr).await;
            let Some(listener) = announce(&tx, bound, |l| l.local_addr()) else {
                return;
            };
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                fiberloop::task::spawn(handle_async(proto, stream)).detach();
            }
        }),
        Model::TokioCt | Model::TokioMt => {
            let rt = if model == Model::TokioCt {
                model::tokio_ct()
            } else {
                model::tokio_mt()
            };
            rt.block_on(async move {
                let bound = tokio::net::TcpListener::bind(addr).await;
                let Some(listener) = announce(&tx, bound, |l| l.local_addr()) else {
                    return;
                };
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(handle_tokio(proto, stream));
                }
            })
        }
        Model::Threads => {
            let bound = std::net::TcpListener::bind(addr);
            let Some(listener) = announce(&tx, bound, |l| l.local_addr()) else {
                return;
            };
            while let Ok((stream, _)) = listener.accept() {
                std::thread::spawn(move || handle_blocking(proto, stream, |s| s.set_nodelay(true)));
            }
        }
        Model::May | Model::MayMt => {
            model::may_init(model);
            may::go!(move || {
                let bound = may::net::TcpListener::bind(addr);
                let Some(listener) = announce(&tx, bound, |l| l.local_addr()) else {
                    return;
                };
                while let Ok((stream, _)) = listener.accept() {
                    may::go!(move || handle_blocking(proto, stream, |s| s.set_nodelay(true)));
                }
            })
            .join()
            .unwrap();
        }
        Model::Callbacks => fiberloop::run(move || {
            let bound = fiberloop::net::TcpListener::bind(addr);
            let Some(listener) = announce(&tx, bound, |l| l.local_addr()) else {
                return;
            };
            let _server =
                fiberloop::transport::serve(listener, || EchoProtocol(None)).expect("on a loop");
            fiberloop::wait(std::future::pending::<()>()).ok(); // serve until the process ends
        }),
        Model::Mio => {
            if let Err(e) = mio_floor(&tx) {
                eprintln!("mio server: {e}");
            }
        }
    }
}

// ---- callbacks: a PEP 3156 protocol ------------------------------------------

/// `examples/echo_protocol.rs`'s protocol, counted in [`ACTIVE`].
struct EchoProtocol(Option<fiberloop::transport::Transport>);

impl fiberloop::transport::Protocol for EchoProtocol {
    fn connection_made(&mut self, transport: &fiberloop::transport::Transport) {
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        self.0 = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(transport) = &self.0 {
            let _ = transport.write(data);
        }
    }

    fn pause_writing(&mut self) {
        if let Some(transport) = &self.0 {
            transport.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(transport) = &self.0 {
            transport.resume_reading();
        }
    }

    fn connection_lost(&mut self, _: Option<io::Error>) {
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
        self.0 = None;
    }
}

// ---- blocking style: fibers, threads, may -----------------------------------

/// One connection, blocking style. The same function serves fibers, OS
/// threads and may coroutines: only the stream type differs.
fn handle_blocking<S: Read + Write>(
    proto: Proto,
    mut stream: S,
    nodelay: impl FnOnce(&S) -> io::Result<()>,
) {
    let _ = nodelay(&stream);
    ACTIVE.fetch_add(1, Ordering::Relaxed);
    let _ = match proto {
        Proto::Echo => echo(&mut stream),
        Proto::Deep => deep(&mut stream),
    };
    ACTIVE.fetch_sub(1, Ordering::Relaxed);
}

fn echo<S: Read + Write>(stream: &mut S) -> io::Result<()> {
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf)? {
            0 => return Ok(()),
            n => stream.write_all(&buf[..n])?,
        }
    }
}

fn deep<S: Read + Write>(stream: &mut S) -> io::Result<()> {
    let mut reader = Bytes::new(stream);
    loop {
        let value = match reader.next() {
            Ok(first) => parse_value(&mut reader, first)?,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        expect(reader.next()?, b'\n')?;
        reader.inner.write_all(format!("{value}\n").as_bytes())?;
    }
}

/// `value := digits | '[' value ']'`, worth its number plus its depth. An
/// ordinary recursive function: any `next()` may block the fiber, however deep.
fn parse_value<S: Read>(reader: &mut Bytes<S>, first: u8) -> io::Result<u64> {
    if first == b'[' {
        let next = reader.next()?;
        let inner = parse_value(reader, next)?;
        expect(reader.next()?, b']')?;
        return Ok(inner + 1);
    }
    let mut number = digit(first)?;
    while reader.peek()?.is_ascii_digit() {
        number = number * 10 + digit(reader.next()?)?;
    }
    Ok(number)
}

/// A small read buffer with byte-at-a-time access.
struct Bytes<S> {
    inner: S,
    buf: [u8; 256],
    pos: usize,
    len: usize,
}

impl<S: Read> Bytes<S> {
    fn new(inner: S) -> Bytes<S> {
        Bytes {
            inner,
            buf: [0; 256],
            pos: 0,
            len: 0,
        }
    }

    fn peek(&mut self) -> io::Result<u8> {
        if self.pos == self.len {
            self.len = self.inner.read(&mut self.buf)?;
            self.pos = 0;
            if self.len == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf[self.pos])
    }

    fn next(&mut self) -> io::Result<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Ok(byte)
    }
}

fn digit(byte: u8) -> io::Result<u64> {
    if byte.is_ascii_digit() {
        Ok(u64::from(byte - b'0'))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected a digit or '[', got {:?}", byte as char),
        ))
    }
}

fn expect(got: u8, want: u8) -> io::Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected {:?}, got {:?}", want as char, got as char),
        ))
    }
}

// ---- async style: fiberloop's async model and tokio -------------------------

type Stream = dyn AsyncStream;

/// The futures-io stream traits, object-safe, so one parser serves both runtimes.
trait AsyncStream: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send {}
impl<T: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send> AsyncStream for T {}

async fn handle_async(proto: Proto, mut stream: fiberloop::async_net::TcpStream) {
    ACTIVE.fetch_add(1, Ordering::Relaxed);
    let _ = match proto {
        Proto::Echo => echo_async(&mut stream).await,
        Proto::Deep => deep_async(&mut stream).await,
    };
    ACTIVE.fetch_sub(1, Ordering::Relaxed);
}

/// tokio's idiom for echo (its own traits); the deep parser runs over a thin
/// futures-io adapter so both async runtimes share one parser.
async fn handle_tokio(proto: Proto, mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    ACTIVE.fetch_add(1, Ordering::Relaxed);
    let _ = match proto {
        Proto::Echo => {
            async {
                let mut buf = [0; 4096];
                loop {
                    match stream.read(&mut buf).await? {
                        0 => return Ok::<_, io::Error>(()),
                        n => stream.write_all(&buf[..n]).await?,
                    }
                }
            }
            .await
        }
        Proto::Deep => deep_async(&mut TokioIo(stream)).await,
    };
    ACTIVE.fetch_sub(1, Ordering::Relaxed);
}

async fn echo_async(stream: &mut Stream) -> io::Result<()> {
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok(()),
            n => stream.write_all(&buf[..n]).await?,
        }
    }
}

async fn deep_async(stream: &mut Stream) -> io::Result<()> {
    let mut reader = AsyncBytes {
        inner: stream,
        buf: [0; 256],
        pos: 0,
        len: 0,
    };
    loop {
        let value = match reader.next().await {
            Ok(first) => parse_value_async(&mut reader, first).await?,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        expect(reader.next().await?, b'\n')?;
        reader
            .inner
            .write_all(format!("{value}\n").as_bytes())
            .await?;
    }
}

/// The same grammar as [`parse_value`], coloured async: a recursive async fn
/// must box its future, and every level is re-polled from the top on each wake.
fn parse_value_async<'a, 's>(
    reader: &'a mut AsyncBytes<'s>,
    first: u8,
) -> Pin<Box<dyn Future<Output = io::Result<u64>> + Send + 'a>> {
    Box::pin(async move {
        if first == b'[' {
            let next = reader.next().await?;
            let inner = parse_value_async(reader, next).await?;
            expect(reader.next().await?, b']')?;
            return Ok(inner + 1);
        }
        let mut number = digit(first)?;
        while reader.peek().await?.is_ascii_digit() {
            number = number * 10 + digit(reader.next().await?)?;
        }
        Ok(number)
    })
}

struct AsyncBytes<'s> {
    inner: &'s mut Stream,
    buf: [u8; 256],
    pos: usize,
    len: usize,
}

impl AsyncBytes<'_> {
    async fn peek(&mut self) -> io::Result<u8> {
        if self.pos == self.len {
            self.len = self.inner.read(&mut self.buf).await?;
            self.pos = 0;
            if self.len == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf[self.pos])
    }

    async fn next(&mut self) -> io::Result<u8> {
        let byte = self.peek().await?;
        self.pos += 1;
        Ok(byte)
    }
}

/// tokio's stream seen through the futures-io traits.
struct TokioIo(tokio::net::TcpStream);

impl futures_io::AsyncRead for TokioIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let mut buf = tokio::io::ReadBuf::new(buf);
        tokio::io::AsyncRead::poll_read(Pin::new(&mut self.get_mut().0), cx, &mut buf)
            .map_ok(|()| buf.filled().len())
    }
}

impl futures_io::AsyncWrite for TokioIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write(Pin::new(&mut self.get_mut().0), cx, buf)
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().0), cx)
    }

    fn poll_close(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut self.get_mut().0), cx)
    }
}

// ---- the floor: a hand-written mio loop --------------------------------------

/// Echo with nothing but mio: one loop, a slab of sockets, one shared buffer,
/// read until `WouldBlock` (edge-triggered), park unsent bytes until writable.
fn mio_floor(tx: &PortTx) -> io::Result<()> {
    use mio::net::{TcpListener, TcpStream};
    use mio::{Events, Interest, Poll, Token};

    const LISTENER: Token = Token(usize::MAX);
    struct Conn {
        stream: TcpStream,
        unsent: Vec<u8>,
    }

    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap())?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let Some(listener) = announce(tx, Ok(listener), |l| l.local_addr()) else {
        return Ok(());
    };
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0; 4096];
    loop {
        match poll.poll(&mut events, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        }
        for event in &events {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            stream.set_nodelay(true)?;
                            let entry = conns.vacant_entry();
                            let interest = Interest::READABLE | Interest::WRITABLE;
                            poll.registry()
                                .register(&mut stream, Token(entry.key()), interest)?;
                            entry.insert(Conn {
                                stream,
                                unsent: Vec::new(),
                            });
                            ACTIVE.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let mut open = flush(&mut conn.stream, &mut conn.unsent);
            while open && conn.unsent.is_empty() {
                match conn.stream.read(&mut buf) {
                    Ok(0) => open = false,
                    Ok(n) => {
                        conn.unsent.extend_from_slice(&buf[..n]);
                        open = flush(&mut conn.stream, &mut conn.unsent);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => open = false,
                }
            }
            if !open {
                let mut conn = conns.remove(key);
                poll.registry().deregister(&mut conn.stream)?;
                ACTIVE.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Writes what it can; false once the connection is broken.
    fn flush(stream: &mut TcpStream, unsent: &mut Vec<u8>) -> bool {
        while !unsent.is_empty() {
            match stream.write(unsent) {
                Ok(n) => {
                    unsent.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}
