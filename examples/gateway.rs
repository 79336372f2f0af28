//! A REST gateway: accepts HTTP/1.1 requests, forwards each to the backend
//! service its path names, and relays the answer. The code per request is
//! plain blocking style — connect, write, read to the end — inside a
//! deadline scope, so a slow backend costs one fiber a bounded wait and the
//! client gets `504`, and a backend that is down gets `502` at once.
//!
//! Run: `cargo run --release --example gateway -- [ADDR] [--timeout-ms N]`
//! (default `127.0.0.1:8000`, 500 ms). The example starts its own backends,
//! each on its own thread and event loop:
//!
//! | path | backend |
//! |---|---|
//! | `/users/...` | answers at once |
//! | `/orders/...` | answers at once |
//! | `/reports/...` | answers after 3 s: past the deadline, so `504` |
//! | `/billing/...` | down (nothing listens): `502` |
//!
//! Try `curl -i http://127.0.0.1:8000/users/42`.

#[path = "support/http.rs"]
mod http;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use fiberloop::net::{TcpListener, TcpStream};
use http::{Request, Response};

/// The largest backend answer relayed.
const MAX_RESPONSE: u64 = 1024 * 1024;

/// A backend service on its own thread and loop; returns its address.
fn start_backend(name: &'static str, delay: Duration) -> io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name(format!("backend-{name}"))
        .spawn(move || {
            fiberloop::run(move || {
                let listener = TcpListener::from_std(listener).expect("backend listener");
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    fiberloop::spawn(move || {
                        let _ = http::serve(stream, http::IDLE, |request| {
                            fiberloop::sleep(delay); // only this fiber waits
                            let mut response = Response::text(
                                200,
                                &format!(
                                    "{{\"service\":\"{name}\",\"method\":\"{}\",\"path\":\"{}\"}}\n",
                                    request.method, request.path
                                ),
                            );
                            response.content_type = "application/json".into();
                            response
                        });
                    });
                }
            })
        })?;
    Ok(addr)
}

/// An address where nothing listens: a port we bound and let go.
fn dead_address() -> io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// One request to a backend and its whole answer, blocking only this fiber.
fn forward(request: &Request, backend: SocketAddr, client: &str) -> io::Result<Response> {
    let mut conn = TcpStream::connect(backend)?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {backend}\r\nConnection: close\r\nX-Forwarded-For: {client}\r\nContent-Length: {}\r\n",
        request.method,
        request.path,
        request.body.len()
    );
    if let Some(content_type) = request.header("content-type") {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(&request.body)?;
    let mut answer = Vec::new();
    (&mut conn)
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut answer)?;
    if answer.len() as u64 > MAX_RESPONSE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "backend answer too large",
        ));
    }
    Response::parse(&answer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The routing table: a path's first segment names a backend.
struct Routes {
    table: Vec<(&'static str, SocketAddr)>,
    deadline: Duration,
}

impl Routes {
    fn handle(&self, request: &Request, client: &str) -> Response {
        let service = request
            .path
            .trim_start_matches('/')
            .split(['/', '?'])
            .next();
        let Some(&(name, backend)) = self.table.iter().find(|(n, _)| Some(*n) == service) else {
            return Response::text(404, "no such service\n");
        };
        // Every blocking call inside gets the deadline; past it they return
        // `TimedOut`, and the fiber unwinds through `?`.
        match fiberloop::timeout(self.deadline, || forward(request, backend, client)) {
            Ok(Ok(response)) => response,
            Err(_) => Response::text(504, &format!("{name} did not answer in time\n")),
            Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                Response::text(504, &format!("{name} did not answer in time\n"))
            }
            Ok(Err(e)) => Response::text(502, &format!("{name} is unavailable: {e}\n")),
        }
    }
}

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:8000".to_string();
    let mut deadline = Duration::from_millis(500);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--timeout-ms" => {
                let ms = args.next().and_then(|v| v.parse().ok());
                let Some(ms) = ms.filter(|&ms| ms > 0) else {
                    eprintln!("gateway: --timeout-ms needs a positive number of milliseconds");
                    std::process::exit(2);
                };
                deadline = Duration::from_millis(ms);
            }
            a if a.starts_with('-') => {
                eprintln!("gateway: unknown option {a}\nusage: gateway [ADDR] [--timeout-ms N]");
                std::process::exit(2);
            }
            a => addr = a.to_string(),
        }
    }
    let routes = Routes {
        table: vec![
            ("users", start_backend("users", Duration::ZERO)?),
            ("orders", start_backend("orders", Duration::ZERO)?),
            ("reports", start_backend("reports", Duration::from_secs(3))?),
            ("billing", dead_address()?),
        ],
        deadline,
    };
    fiberloop::run(move || {
        let listener = TcpListener::bind(addr.as_str())?;
        println!("gateway listening on http://{}", listener.local_addr()?);
        for (name, backend) in &routes.table {
            println!("  /{name}/... -> {backend}");
        }
        let routes = std::rc::Rc::new(routes);
        loop {
            let Ok((stream, peer)) = listener.accept() else {
                continue;
            };
            let routes = routes.clone();
            fiberloop::spawn(move || {
                let client = peer.ip().to_string();
                let _ = http::serve(stream, http::IDLE, |request| {
                    routes.handle(request, &client)
                });
            });
        }
    })
}
