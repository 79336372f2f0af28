//! Unmodified blocking crates in fibers: 50 `ureq` GETs (std's `TcpStream`
//! inside) from 50 fibers on one loop, against a slow server on the same
//! loop. With the `hook` feature each GET parks only its fiber, so the 50
//! overlap; without it, each would hold the loop's only thread (and the
//! server on it could never answer).
//!
//! Run: `cargo run --features hook --example std_crates`

use std::io::{Read, Write};
use std::time::{Duration, Instant};

const GETS: usize = 50;
const DELAY: Duration = Duration::from_millis(100);

/// A slow HTTP server in fibers: every request waits `DELAY`, then gets
/// "hello <path>".
fn serve(listener: fiberloop::net::TcpListener) {
    for _ in 0..GETS {
        let (mut stream, _) = listener.accept().expect("accept");
        fiberloop::spawn(move || {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
            fiberloop::sleep(DELAY);
            let body = format!("hello {path}");
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        });
    }
}

fn main() {
    fiberloop::run(|| {
        let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        fiberloop::spawn(move || serve(listener));

        let started = Instant::now();
        let gets: Vec<_> = (0..GETS)
            .map(|i| {
                fiberloop::spawn(move || {
                    let url = format!("http://127.0.0.1:{port}/{i}");
                    match ureq::get(&url).call() {
                        Ok(response) => response.into_string().map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                })
            })
            .collect();
        let mut ok = 0;
        for (i, get) in gets.into_iter().enumerate() {
            match get.join().expect("the fiber ran") {
                Ok(body) if body == format!("hello /{i}") => ok += 1,
                Ok(body) => eprintln!("GET /{i}: unexpected body {body:?}"),
                Err(e) => eprintln!("GET /{i} failed: {e}"),
            }
        }
        let elapsed = started.elapsed();
        println!("{ok} of {GETS} ureq GETs answered correctly, from {GETS} fibers on one loop");
        println!(
            "all done in {:.2} s; each waited {} ms at the server, so one after another would take {:.1} s",
            elapsed.as_secs_f64(),
            DELAY.as_millis(),
            (DELAY * GETS as u32).as_secs_f64()
        );
        if ok != GETS {
            std::process::exit(1);
        }
    });
}
