//! Unmodified blocking crates in fibers: `ureq` (HTTP over std's
//! `TcpStream`) and `tungstenite::connect`. With the `hook` feature, 200
//! `ureq` GETs from fibers on one loop overlap; without it they run one
//! after another (each blocks the loop's only thread).

use std::time::{Duration, Instant};

/// The answer a request for `/i` gets.
#[allow(dead_code)]
fn body(i: usize) -> String {
    format!("hello {i}")
}

/// Answers one HTTP/1.1 request on `stream` after `delay`, with
/// `body(i)` for a request of `/i`.
#[allow(dead_code)]
fn answer<S: std::io::Read + std::io::Write>(
    mut stream: S,
    delay: Duration,
    sleep: impl Fn(Duration),
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/0");
    let i: usize = path.trim_start_matches('/').parse().unwrap_or(0);
    sleep(delay);
    let body = body(i);
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

#[cfg(feature = "hook")]
#[test]
fn two_hundred_ureq_gets_in_fibers_on_one_loop_overlap() {
    const REQUESTS: usize = 200;
    let elapsed = fiberloop::run(|| {
        let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = fiberloop::spawn(move || {
            let served: Vec<_> = (0..REQUESTS)
                .map(|_| {
                    let (stream, _) = listener.accept().unwrap();
                    fiberloop::spawn(move || {
                        answer(stream, Duration::from_millis(100), fiberloop::sleep)
                    })
                })
                .collect();
            served.into_iter().for_each(|h| h.join().unwrap());
        });
        let started = Instant::now();
        let clients: Vec<_> = (0..REQUESTS)
            .map(|i| {
                fiberloop::spawn(move || {
                    // "localhost": the name lookup goes through the hooked
                    // getaddrinfo, on the loop's pool.
                    let url = format!("http://localhost:{port}/{i}");
                    let got = ureq::get(&url).call().unwrap().into_string().unwrap();
                    assert_eq!(got, body(i));
                })
            })
            .collect();
        clients.into_iter().for_each(|h| h.join().unwrap());
        let elapsed = started.elapsed();
        server.join().unwrap();
        elapsed
    });
    // One after another this takes 20 s; overlapped, about 0.1 s (0.15 s
    // measured). The bound is generous for a shared machine.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[cfg(not(feature = "hook"))]
#[test]
fn without_the_hook_ureq_gets_in_fibers_run_one_after_another() {
    const REQUESTS: usize = 5;
    // The server has its own threads: on the fibers' loop it could never run.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let threads: Vec<_> = (0..REQUESTS)
            .map(|_| {
                let (stream, _) = listener.accept().unwrap();
                std::thread::spawn(move || {
                    answer(stream, Duration::from_millis(100), std::thread::sleep)
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
    });
    let elapsed = fiberloop::run(move || {
        let started = Instant::now();
        let clients: Vec<_> = (0..REQUESTS)
            .map(|i| {
                fiberloop::spawn(move || {
                    let url = format!("http://127.0.0.1:{port}/{i}");
                    assert_eq!(
                        ureq::get(&url).call().unwrap().into_string().unwrap(),
                        body(i)
                    );
                })
            })
            .collect();
        clients.into_iter().for_each(|h| h.join().unwrap());
        started.elapsed()
    });
    server.join().unwrap();
    // Each GET held the loop for its whole 100 ms: serial.
    assert!(
        elapsed >= Duration::from_millis(100 * REQUESTS as u64),
        "{elapsed:?}"
    );
}

#[cfg(feature = "hook")]
#[test]
fn tungstenite_connect_in_fibers_against_a_fiberloop_server_on_the_same_loop() {
    const CLIENTS: usize = 20;
    const MESSAGES: usize = 5;
    fiberloop::run(|| {
        let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = fiberloop::spawn(move || {
            let sessions: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let (stream, _) = listener.accept().unwrap();
                    fiberloop::spawn(move || {
                        let mut ws = tungstenite::accept(stream).unwrap();
                        let mut echoed = 0;
                        loop {
                            match ws.read() {
                                Ok(message) if message.is_text() => {
                                    ws.send(message).unwrap();
                                    echoed += 1;
                                }
                                Ok(_) => {}
                                Err(_) => break echoed,
                            }
                        }
                    })
                })
                .collect();
            sessions
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum::<usize>()
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                fiberloop::spawn(move || {
                    let (mut ws, response) = tungstenite::connect(format!("ws://{addr}/")).unwrap();
                    assert_eq!(response.status(), 101);
                    for m in 0..MESSAGES {
                        let text = format!("client {c} message {m}");
                        ws.send(tungstenite::Message::text(text.clone())).unwrap();
                        assert_eq!(ws.read().unwrap().into_text().unwrap(), text);
                    }
                    ws.close(None).unwrap();
                    while ws.read().is_ok() {}
                })
            })
            .collect();
        clients.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(server.join().unwrap(), CLIENTS * MESSAGES);
    });
}
