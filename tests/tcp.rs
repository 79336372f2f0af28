//! TCP in fibers: echo at scale, and every fault a client or server meets.

mod util;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use fiberloop::net::{TcpListener, TcpStream};

/// Spawns an echo server fiber that serves until the loop ends.
fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    fiberloop::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            fiberloop::spawn(move || {
                let mut buf = [0; 4096];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_thousand_concurrent_echo_connections_get_their_bytes_back() {
    const CONNECTIONS: usize = 1000;
    const ROUNDS: usize = 5;
    // Two descriptors per connection (client and server side) plus slack.
    if util::fd_soft_limit() < 4 * CONNECTIONS as u64 {
        util::set_fd_soft_limit(4 * CONNECTIONS as u64);
    }
    let intact = fiberloop::run(|| {
        let addr = echo_server();
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|id| {
                fiberloop::spawn(move || -> std::io::Result<bool> {
                    let mut stream = TcpStream::connect(addr)?;
                    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                    for round in 0..ROUNDS {
                        // Distinct bytes per connection and round, 1 KiB each.
                        let msg: Vec<u8> =
                            (0..1024).map(|i| (id * 31 + round * 7 + i) as u8).collect();
                        stream.write_all(&msg)?;
                        let mut back = vec![0; msg.len()];
                        stream.read_exact(&mut back)?;
                        if back != msg {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().unwrap().unwrap())
            .filter(|&ok| ok)
            .count()
    });
    assert_eq!(intact, CONNECTIONS);
}

#[test]
fn large_transfers_in_both_directions_at_once() {
    // 8 MiB each way through one connection: a writer fiber and a reader
    // fiber share the stream (try_clone), so neither side's buffers deadlock.
    const SIZE: usize = 8 << 20;
    let received = fiberloop::run(|| {
        let addr = echo_server();
        let stream = TcpStream::connect(addr).unwrap();
        let writer = stream.try_clone().unwrap();
        let w = fiberloop::spawn(move || {
            let chunk: Vec<u8> = (0..65536).map(|i| (i % 251) as u8).collect();
            let mut writer = writer;
            for _ in 0..SIZE / chunk.len() {
                writer.write_all(&chunk).unwrap();
            }
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut reader = stream;
        let mut total = 0usize;
        let mut buf = vec![0; 65536];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            assert!(buf[..n]
                .iter()
                .enumerate()
                .all(|(i, &b)| b == ((total + i) % 65536 % 251) as u8));
            total += n;
        }
        w.join().unwrap();
        total
    });
    assert_eq!(received, SIZE);
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    fiberloop::run(|| {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        }; // closed again
        let err = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    });
}

#[test]
fn connect_timeout_validates_and_connects() {
    fiberloop::run(|| {
        let addr = echo_server();
        assert_eq!(
            TcpStream::connect_timeout(&addr, Duration::ZERO)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput
        );
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        assert_eq!(s.peer_addr().unwrap(), addr);
        s.set_nodelay(true).unwrap();
        assert!(s.nodelay().unwrap());
    });
}

#[test]
fn eof_when_the_peer_closes() {
    fiberloop::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        fiberloop::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"bye").unwrap();
        }); // stream dropped: FIN
        let mut s = TcpStream::connect(addr).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"bye");
        assert_eq!(s.read(&mut [0; 4]).unwrap(), 0, "EOF again");
    });
}

#[test]
fn a_reset_peer_is_an_error_not_a_sigpipe() {
    fiberloop::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = fiberloop::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            util::reset_on_close(&s); // close sends RST instead of FIN
        });
        let mut s = TcpStream::connect(addr).unwrap();
        server.join().unwrap();
        fiberloop::sleep(Duration::from_millis(20));
        // Writing into a reset connection fails; it must not kill the process.
        let mut failure = None;
        for _ in 0..100 {
            if let Err(e) = s.write_all(&[0; 1024]) {
                failure = Some(e);
                break;
            }
        }
        let err = failure.expect("writes to a reset peer fail");
        assert!(util::peer_gone(&err), "{err:?}");
    });
}

#[test]
fn read_timeout_gives_timed_out_and_the_stream_stays_usable() {
    fiberloop::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = fiberloop::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            fiberloop::sleep(Duration::from_millis(60));
            s.write_all(b"late").unwrap();
            fiberloop::sleep(Duration::from_millis(20));
        });
        let mut s = TcpStream::connect(addr).unwrap();
        assert_eq!(
            s.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        s.set_read_timeout(Some(Duration::from_millis(15))).unwrap();
        assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(15)));
        let start = Instant::now();
        let err = s.read(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(15), "never early");
        s.set_read_timeout(None).unwrap();
        let mut buf = [0; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"late");
        server.join().unwrap();
    });
}

#[test]
fn shutdown_wakes_a_fiber_blocked_on_the_same_socket() {
    fiberloop::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _server = fiberloop::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            fiberloop::sleep(Duration::from_secs(3600)); // holds the peer open, silent
            drop(s);
        });
        let stream = TcpStream::connect(addr).unwrap();
        let reader = stream.try_clone().unwrap();
        let blocked = fiberloop::spawn(move || {
            let mut reader = reader;
            reader.read(&mut [0; 8])
        });
        fiberloop::sleep(Duration::from_millis(10));
        assert!(!blocked.is_finished(), "the reader is parked");
        stream.shutdown(Shutdown::Both).unwrap();
        assert_eq!(
            blocked.join().unwrap().unwrap(),
            0,
            "woken with end of file"
        );
        let err = (&stream).write(b"x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    });
}

#[test]
fn std_bufreader_works_over_a_fiber_stream() {
    fiberloop::run(|| {
        let addr = echo_server();
        let stream = TcpStream::connect(addr).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        for i in 0..50 {
            writeln!(writer, "line {i}").unwrap();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line, format!("line {i}\n"));
        }
    });
}

#[test]
fn outside_a_loop_the_types_block_like_std() {
    // A plain-thread server and client, no event loop anywhere.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"hello").unwrap();
    let mut back = [0; 5];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello");
    server.join().unwrap();
    c.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    assert_eq!(c.read(&mut back).unwrap(), 0, "server closed");
}

#[test]
fn a_stream_made_in_one_loop_works_in_another() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        std::io::copy(&mut s.try_clone().unwrap(), &mut s).unwrap();
    });
    let stream = fiberloop::run(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"one").unwrap();
        let mut b = [0; 3];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"one");
        s
    });
    // A new loop on another thread: the socket re-registers there.
    let stream = std::thread::spawn(move || {
        fiberloop::run(move || {
            let mut s = stream;
            s.write_all(b"two").unwrap();
            let mut b = [0; 3];
            s.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"two");
            s
        })
    })
    .join()
    .unwrap();
    stream.shutdown(Shutdown::Both).unwrap();
    server.join().unwrap();
}

#[test]
fn host_names_resolve_without_blocking_the_loop() {
    fiberloop::run(|| {
        let listener = TcpListener::bind("localhost:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ticker = fiberloop::spawn(|| {
            for _ in 0..3 {
                fiberloop::sleep(Duration::from_millis(1));
            }
        });
        let accepted = fiberloop::spawn(move || listener.accept().map(|_| ()));
        let s = TcpStream::connect(("localhost", port)).unwrap();
        assert_eq!(s.peer_addr().unwrap().port(), port);
        accepted.join().unwrap().unwrap();
        ticker.join().unwrap();
        let err = TcpStream::connect("no-such-host.invalid:80").unwrap_err();
        assert_ne!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    });
}
