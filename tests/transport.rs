//! Transports and protocols: the callback order, echo over TCP and Unix,
//! half-close, flow control in both directions, failures reaching
//! `connection_lost`, and the errors for misuse.

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use fiberloop::net::{TcpListener, TcpStream, UnixStream};
use fiberloop::transport::{self, Protocol, Transport};

type Log = Rc<RefCell<Vec<String>>>;

/// Echoes, and logs every callback.
struct Echo {
    transport: Option<Transport>,
    log: Log,
}

impl Echo {
    fn new(log: &Log) -> Echo {
        Echo {
            transport: None,
            log: log.clone(),
        }
    }
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        self.log.borrow_mut().push("made".into());
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.log.borrow_mut().push(format!("data {}", data.len()));
        self.transport.as_ref().unwrap().write(data).unwrap();
    }

    fn eof_received(&mut self) -> bool {
        self.log.borrow_mut().push("eof".into());
        false
    }

    fn connection_lost(&mut self, error: Option<std::io::Error>) {
        self.log
            .borrow_mut()
            .push(format!("lost {:?}", error.map(|e| e.kind())));
    }
}

#[test]
fn an_echo_protocol_serves_many_tcp_clients_in_callback_order() {
    fiberloop::run(|| {
        let log = Log::default();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = transport::serve(listener, {
            let log = log.clone();
            move || Echo::new(&log)
        })
        .unwrap();
        let clients: Vec<_> = (0..10u8)
            .map(|i| {
                fiberloop::spawn(move || {
                    let mut stream = TcpStream::connect(addr).unwrap();
                    let message = vec![i; 1000 * (i as usize + 1)];
                    stream.write_all(&message).unwrap();
                    stream.shutdown(Shutdown::Write).unwrap();
                    let mut back = Vec::new();
                    stream.read_to_end(&mut back).unwrap();
                    assert_eq!(back, message);
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        fiberloop::sleep(Duration::from_millis(10)); // let the drivers finish
        let log = log.borrow();
        assert_eq!(log.iter().filter(|e| *e == "made").count(), 10);
        assert_eq!(log.iter().filter(|e| *e == "eof").count(), 10);
        assert_eq!(log.iter().filter(|e| *e == "lost None").count(), 10);
        let echoed: usize = log
            .iter()
            .filter_map(|e| e.strip_prefix("data "))
            .map(|n| n.parse::<usize>().unwrap())
            .sum();
        assert_eq!(echoed, (1..=10).map(|i| 1000 * i).sum());
        server.close();
        fiberloop::sleep(Duration::from_millis(10));
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    });
}

#[test]
fn one_connection_sees_made_data_eof_lost_in_that_order() {
    fiberloop::run(|| {
        let log = Log::default();
        let (a, mut b) = UnixStream::pair().unwrap();
        let transport = transport::attach(a, Echo::new(&log)).unwrap();
        assert_eq!(transport.peer().to_string(), "(unnamed unix socket)");
        b.write_all(b"hello").unwrap();
        let mut back = [0; 5];
        b.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");
        b.shutdown(Shutdown::Write).unwrap();
        assert_eq!(b.read(&mut back).unwrap(), 0, "closed after EOF");
        fiberloop::sleep(Duration::from_millis(5));
        assert_eq!(*log.borrow(), ["made", "data 5", "eof", "lost None"]);
        assert!(transport.is_closing());
        let err = transport.write(b"late").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    });
}

/// Counts bytes; on EOF answers with the count and half-closes.
struct Counter {
    transport: Option<Transport>,
    bytes: usize,
}

impl Protocol for Counter {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.bytes += data.len();
    }

    fn eof_received(&mut self) -> bool {
        let transport = self.transport.as_ref().unwrap();
        transport
            .write(format!("{} bytes\n", self.bytes).as_bytes())
            .unwrap();
        transport.close();
        true // keep open: we close it ourselves after the reply
    }
}

#[test]
fn a_protocol_may_answer_after_eof() {
    fiberloop::run(|| {
        let (a, mut b) = UnixStream::pair().unwrap();
        transport::attach(
            a,
            Counter {
                transport: None,
                bytes: 0,
            },
        )
        .unwrap();
        b.write_all(&[7; 100_000]).unwrap();
        b.shutdown(Shutdown::Write).unwrap();
        let mut reply = String::new();
        b.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "100000 bytes\n");
    });
}

/// Writes `total` bytes in chunks, pausing while the transport says so.
struct Producer {
    transport: Option<Transport>,
    left: usize,
    paused: bool,
    log: Log,
}

impl Producer {
    fn produce(&mut self) {
        let transport = self.transport.as_ref().unwrap();
        while self.left > 0 && !transport.is_writing_paused() {
            let n = self.left.min(1024);
            let chunk: Vec<u8> = (0..n).map(|i| ((self.left - i) % 251) as u8).collect();
            transport.write(&chunk).unwrap();
            self.left -= n;
        }
        if self.left == 0 {
            transport.close();
        }
    }
}

impl Protocol for Producer {
    fn connection_made(&mut self, transport: &Transport) {
        transport
            .set_write_buffer_limits(Some(4096), Some(1024))
            .unwrap();
        assert_eq!(transport.write_buffer_limits(), (1024, 4096));
        self.transport = Some(transport.clone());
        self.produce();
    }

    fn data_received(&mut self, _: &[u8]) {}

    fn pause_writing(&mut self) {
        assert!(!self.paused);
        self.paused = true;
        self.log.borrow_mut().push("pause".into());
    }

    fn resume_writing(&mut self) {
        assert!(self.paused);
        self.paused = false;
        self.log.borrow_mut().push("resume".into());
        self.produce();
    }
}

#[test]
fn writing_pauses_at_the_high_mark_and_resumes_at_the_low_one_without_losing_bytes() {
    fiberloop::run(|| {
        let log = Log::default();
        let (a, mut b) = UnixStream::pair().unwrap();
        let total = 4 << 20;
        transport::attach(
            a,
            Producer {
                transport: None,
                left: total,
                paused: false,
                log: log.clone(),
            },
        )
        .unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), total);
        let expected: Vec<u8> = (0..total)
            .map(|k| {
                let (chunk, i) = (k / 1024, k % 1024);
                ((total - chunk * 1024 - i) % 251) as u8
            })
            .collect();
        assert!(got == expected, "the bytes arrived out of order or changed");
        let log = log.borrow();
        let pauses = log.iter().filter(|e| *e == "pause").count();
        assert!(pauses > 0, "a 4 MiB stream into a socket pair must fill it");
        assert_eq!(pauses, log.iter().filter(|e| *e == "resume").count());
    });
}

/// Pauses reading after the first chunk; logs what it gets.
struct Pauser {
    transport: Option<Transport>,
    got: Rc<RefCell<Vec<u8>>>,
}

impl Protocol for Pauser {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.got.borrow_mut().extend_from_slice(data);
        self.transport.as_ref().unwrap().pause_reading();
    }
}

#[test]
fn paused_reading_delivers_nothing_until_resumed() {
    fiberloop::run(|| {
        let got = Rc::new(RefCell::new(Vec::new()));
        let (a, mut b) = UnixStream::pair().unwrap();
        let transport = transport::attach(
            a,
            Pauser {
                transport: None,
                got: got.clone(),
            },
        )
        .unwrap();
        b.write_all(b"first").unwrap();
        fiberloop::sleep(Duration::from_millis(5));
        assert!(!transport.is_reading());
        b.write_all(b" second").unwrap();
        fiberloop::sleep(Duration::from_millis(5));
        assert_eq!(&*got.borrow(), b"first");
        transport.resume_reading();
        fiberloop::sleep(Duration::from_millis(5));
        assert_eq!(&*got.borrow(), b"first second");
    });
}

#[test]
fn abort_drops_the_buffer_and_a_write_failure_reaches_connection_lost() {
    fiberloop::run(|| {
        // abort: the peer sees EOF at once, the protocol `lost None`.
        let log = Log::default();
        let (a, mut b) = UnixStream::pair().unwrap();
        let transport = transport::attach(a, Echo::new(&log)).unwrap();
        transport.abort();
        let mut buf = [0; 8];
        assert_eq!(b.read(&mut buf).unwrap(), 0);
        fiberloop::sleep(Duration::from_millis(5));
        assert_eq!(*log.borrow(), ["made", "lost None"]);

        // A peer that goes away while we still write: the error arrives once.
        let log = Log::default();
        let (a, b) = UnixStream::pair().unwrap();
        let transport = transport::attach(a, Echo::new(&log)).unwrap();
        transport.write(&vec![1; 1 << 20]).unwrap(); // more than the socket takes
        drop(b);
        fiberloop::sleep(Duration::from_millis(10));
        let log = log.borrow();
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(
            log[1] == "lost Some(BrokenPipe)" || log[1] == "lost Some(ConnectionReset)",
            "{log:?}"
        );
    });
}

#[test]
fn misuse_gets_clear_errors() {
    fiberloop::run(|| {
        let log = Log::default();
        let (a, _b) = UnixStream::pair().unwrap();
        let transport = transport::attach(a, Echo::new(&log)).unwrap();
        let err = transport
            .set_write_buffer_limits(Some(10), Some(20))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        transport.close();
        let err = transport.write(b"after close").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    });
    // Outside a loop there is nothing to drive a transport.
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = UnixStream::from_std(a).unwrap();
    let err = transport::attach(a, Echo::new(&Log::default())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn serve_runs_protocols_over_a_unix_listener_and_tcp_streams_attach_from_the_async_face() {
    let path = std::env::temp_dir().join(format!("fiberloop-{}-proto.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = path.clone();
    fiberloop::run(move || {
        let log = Log::default();
        let listener = fiberloop::net::UnixListener::bind(&p).unwrap();
        let server = transport::serve(listener, {
            let log = log.clone();
            move || Echo::new(&log)
        })
        .unwrap();
        for round in 0..3u8 {
            let mut client = UnixStream::connect(&p).unwrap();
            client.write_all(&[round; 3]).unwrap();
            let mut back = [0; 3];
            client.read_exact(&mut back).unwrap();
            assert_eq!(back, [round; 3]);
        }
        server.close();

        // A TCP stream from the async face, and its peer address.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = fiberloop::spawn(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(b"via async").unwrap();
            let mut back = [0; 9];
            stream.read_exact(&mut back).unwrap();
            (back, stream.local_addr().unwrap())
        });
        let (accepted, _) = listener.accept().unwrap();
        let accepted = fiberloop::async_net::TcpStream::from(accepted);
        let transport = transport::attach(accepted, Echo::new(&log)).unwrap();
        let (back, client_addr) = client.join().unwrap();
        assert_eq!(&back, b"via async");
        assert_eq!(transport.peer().to_string(), client_addr.to_string());
    });
    let _ = std::fs::remove_file(&path);
}

struct Panicker;

impl Protocol for Panicker {
    fn data_received(&mut self, _: &[u8]) {
        panic!("protocol bug");
    }
}

#[test]
fn a_panicking_protocol_closes_only_its_connection() {
    fiberloop::run(|| {
        let log = Log::default();
        let (a, mut b) = UnixStream::pair().unwrap();
        let (c, mut d) = UnixStream::pair().unwrap();
        transport::attach(a, Panicker).unwrap();
        transport::attach(c, Echo::new(&log)).unwrap();
        b.write_all(b"boom").unwrap();
        let mut buf = [0; 4];
        assert_eq!(b.read(&mut buf).unwrap(), 0, "its socket is closed");
        d.write_all(b"fine").unwrap();
        d.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"fine");
    });
}

/// An echo, or (without one) a protocol whose `connection_made` panics.
struct PanicsOnArrival(Option<Echo>);

impl Protocol for PanicsOnArrival {
    fn connection_made(&mut self, transport: &Transport) {
        match &mut self.0 {
            Some(echo) => echo.connection_made(transport),
            None => panic!("connection_made bug (expected)"),
        }
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(echo) = &mut self.0 {
            echo.data_received(data);
        }
    }
}

/// Every other connection's factory panics, or its `connection_made` does:
/// those clients see their connection closed; the server keeps serving.
#[test]
fn a_panic_in_connection_made_or_the_factory_ends_only_that_connection() {
    fiberloop::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Log::default();
        let made = Rc::new(std::cell::Cell::new(0));
        let server = transport::serve(listener, {
            let (log, made) = (log.clone(), made.clone());
            move || {
                made.set(made.get() + 1);
                match made.get() % 3 {
                    1 => panic!("factory bug (expected)"),
                    2 => PanicsOnArrival(None),
                    _ => PanicsOnArrival(Some(Echo::new(&log))),
                }
            }
        })
        .unwrap();
        for round in 0..2 {
            for broken in 0..2 {
                let mut client = TcpStream::connect(addr).unwrap();
                let mut buf = [0; 8];
                let n = client.read(&mut buf).unwrap_or(0);
                assert_eq!(n, 0, "round {round}, broken {broken}: closed");
            }
            let mut client = TcpStream::connect(addr).unwrap();
            client.write_all(b"alive").unwrap();
            let mut buf = [0; 5];
            client.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"alive", "round {round}: still serving");
        }
        server.close();
    });
}
