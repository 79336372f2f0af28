//! The one load generator every server faces: a single-threaded mio client
//! holding `conns` connections, each with one request outstanding (closed
//! loop). A request may come in several chunks, sent one loop turn apart, so
//! a server sees part of a request and must wait for the rest mid-parse.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// What to send and what must come back.
pub struct Load {
    /// Concurrent connections.
    pub conns: usize,
    /// One request, as the chunks it is written in.
    pub request: Vec<Vec<u8>>,
    /// The exact reply expected.
    pub response: Vec<u8>,
    /// Time to run before measuring.
    pub warmup: Duration,
    /// Time measured.
    pub measure: Duration,
}

/// What the measured window saw.
pub struct Outcome {
    /// Round trips completed in the window.
    pub trips: u64,
    /// The window's length.
    pub elapsed: Duration,
    /// Round-trip latencies in the window, sorted, in nanoseconds.
    pub latencies: Vec<u64>,
}

impl Outcome {
    /// Round trips per second.
    pub fn rate(&self) -> f64 {
        self.trips as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q`-quantile latency in microseconds.
    pub fn latency_us(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i] as f64 / 1000.0
    }
}

struct Conn {
    stream: TcpStream,
    next_chunk: usize,
    received: usize,
    started: Instant,
}

/// Moments the caller hears about.
pub enum Mark {
    /// This many connections are open: wait until the server has taken them.
    Connected(usize),
    /// The measured window starts or ends (sample the server's CPU).
    Window,
}

/// Connections opened between two waits for the server to take them: fewer
/// than any listen backlog, so no SYN is dropped (a dropped SYN costs a
/// one-second retransmission).
pub const CONNECT_BATCH: usize = 64;

/// Runs `load` against `addr`, telling `mark` about its progress.
pub fn run(
    addr: SocketAddr,
    load: &Load,
    mut mark: impl FnMut(Mark) -> io::Result<()>,
) -> io::Result<Outcome> {
    let mut poll = Poll::new()?;
    let mut conns = Vec::with_capacity(load.conns);
    for i in 0..load.conns {
        if i % CONNECT_BATCH == 0 && i > 0 {
            mark(Mark::Connected(i))?;
        }
        let std = std::net::TcpStream::connect(addr)?;
        reset_on_close(&std)?;
        std.set_nodelay(true)?;
        std.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)?;
        conns.push(Conn {
            stream,
            next_chunk: 0,
            received: 0,
            started: Instant::now(),
        });
    }
    mark(Mark::Connected(load.conns))?;
    let mut pending = Vec::new(); // connections with chunks left to send
    for (i, conn) in conns.iter_mut().enumerate() {
        start_request(conn, i, load, &mut pending)?;
    }
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0; 64 * 1024];
    let begin = Instant::now();
    let (warm_end, end) = (begin + load.warmup, begin + load.warmup + load.measure);
    let mut window_start: Option<Instant> = None;
    let mut latencies = Vec::new();
    let mut trips = 0;
    loop {
        let now = Instant::now();
        if window_start.is_none() && now >= warm_end {
            mark(Mark::Window)?;
            window_start = Some(Instant::now());
        } else if now >= end {
            mark(Mark::Window)?;
            let elapsed = window_start.map_or(Duration::ZERO, |s| s.elapsed());
            latencies.sort_unstable();
            return Ok(Outcome {
                trips,
                elapsed,
                latencies,
            });
        }
        for i in std::mem::take(&mut pending) {
            let conn = &mut conns[i];
            send_chunk(conn, load)?;
            if conn.next_chunk < load.request.len() {
                pending.push(i);
            }
        }
        let timeout = if pending.is_empty() {
            Duration::from_millis(5)
        } else {
            Duration::ZERO
        };
        match poll.poll(&mut events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        }
        for event in &events {
            let i = event.token().0;
            let conn = &mut conns[i];
            loop {
                match conn.stream.read(&mut scratch) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed a connection",
                        ))
                    }
                    Ok(n) => {
                        let want = &load.response[conn.received..];
                        if n > want.len() || scratch[..n] != want[..n] {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "the server's reply differs from the expected one",
                            ));
                        }
                        conn.received += n;
                        if conn.received == load.response.len() {
                            if window_start.is_some() {
                                trips += 1;
                                latencies.push(conn.started.elapsed().as_nanos() as u64);
                            }
                            start_request(conn, i, load, &mut pending)?;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

fn start_request(
    conn: &mut Conn,
    i: usize,
    load: &Load,
    pending: &mut Vec<usize>,
) -> io::Result<()> {
    conn.next_chunk = 0;
    conn.received = 0;
    conn.started = Instant::now();
    send_chunk(conn, load)?;
    if conn.next_chunk < load.request.len() {
        pending.push(i);
    }
    Ok(())
}

/// Writes the next chunk whole. The socket's buffer is all but empty (one
/// request in flight), so `WouldBlock` is rare: spin through it.
fn send_chunk(conn: &mut Conn, load: &Load) -> io::Result<()> {
    let mut chunk = &load.request[conn.next_chunk][..];
    conn.next_chunk += 1;
    while !chunk.is_empty() {
        match conn.stream.write(chunk) {
            Ok(n) => chunk = &chunk[n..],
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                std::thread::yield_now()
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes closing `stream` send a reset instead of a FIN, so the client side
/// leaves no `TIME_WAIT` entry behind: tens of thousands of those (a minute
/// each) would make every later `connect` hunt for a free port.
pub fn reset_on_close(stream: &std::net::TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open (we borrow its owner) and `linger` is a valid
    // struct of the size we pass, read by the kernel during the call only.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
