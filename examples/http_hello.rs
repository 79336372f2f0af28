//! A minimal HTTP/1.1 server with keep-alive, in either model: one fiber per
//! connection (the default) or one async task (`--async`). `serve_async`
//! below is `http::serve` (in `support/http.rs`, shared with `gateway`) with
//! `.await` added: the same steps in the same order.
//!
//! Run: `cargo run --release --example http_hello -- [--async] [--idle-ms N]
//! [--loops N] [ADDR]` (default `127.0.0.1:8080`, 10 s idle, one loop), then
//! `curl -v http://127.0.0.1:8080/` or `wrk -c 100 -d 10s http://127.0.0.1:8080/`.
//! With `--loops N`, N loops each accept on the same port (`SO_REUSEPORT`)
//! and serve what they accept, in the chosen model.
//!
//! Bad input is answered, not crashed on: a head over 8 KiB gets `431`, a
//! malformed request or conflicting `Content-Length` headers `400`, a request
//! that has not fully arrived when the idle time passes `408` (however the
//! client trickles it: the time counts per request, not per read; an idle
//! keep-alive connection is simply closed), a client that stops reading its
//! responses is cut off after the idle time, and each closes only that
//! connection, freeing its fiber or task.

#[path = "support/http.rs"]
mod http;

use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use http::{on_silence, Buffer, Next, Request, Response, CHUNK, LINGER, LINGER_BYTES};

/// The application: the same for both models.
fn hello(request: &Request) -> Response {
    match request.method.as_str() {
        "GET" | "HEAD" => Response::text(200, "Hello, world!\n"),
        _ => Response::text(405, "only GET and HEAD here\n"),
    }
}

/// `http::reject` (the fibers' version) for an async task.
async fn reject_async(
    mut stream: fiberloop::async_net::TcpStream,
    response: &Response,
) -> io::Result<()> {
    stream.write_all(&response.to_bytes(false)).await?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let drain = async {
        let mut sink = [0; CHUNK];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        io::Result::Ok(())
    };
    fiberloop::time::timeout(LINGER, drain).await?
}

/// One connection, in an async task: the same steps, awaited.
async fn serve_async(
    mut stream: fiberloop::async_net::TcpStream,
    idle: Duration,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = Buffer::default();
    let mut deadline = Instant::now() + idle;
    loop {
        match buffer.next_request() {
            Next::Request(request) => {
                let response = hello(&request);
                // A client that sends requests but never reads is cut off.
                let bytes = response.to_bytes(request.keep_alive);
                fiberloop::time::timeout(idle, stream.write_all(&bytes)).await??;
                if !request.keep_alive {
                    return Ok(());
                }
                deadline = Instant::now() + idle;
            }
            Next::Reject(response) => return reject_async(stream, &response).await,
            Next::NeedMore => {
                let read = match http::time_left(deadline) {
                    Ok(left) => fiberloop::time::timeout(left, stream.read(buffer.spare(CHUNK)))
                        .await
                        .map_err(io::Error::from)
                        .and_then(|r| r),
                    Err(e) => Err(e),
                };
                match read {
                    Ok(0) => return Ok(()),
                    Ok(n) => buffer.filled(n),
                    Err(e) => {
                        if let Some(response) = on_silence(&buffer, &e) {
                            return reject_async(stream, &response).await;
                        }
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// A connection error worth a line on stderr (not a client going away).
fn report(e: &io::Error) {
    if !matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::TimedOut
    ) {
        eprintln!("connection ended: {e}");
    }
}

/// Accepts forever on a fiber's loop, a fiber per connection.
fn serve_fibers(listener: fiberloop::net::TcpListener, idle: Duration) {
    loop {
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        fiberloop::spawn(move || {
            if let Err(e) = http::serve(stream, idle, hello) {
                report(&e);
            }
        });
    }
}

/// Accepts forever in an async task, a task per connection.
async fn serve_tasks(listener: fiberloop::async_net::TcpListener, idle: Duration) {
    loop {
        // An accept error (out of descriptors) is returned after a back-off.
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        fiberloop::task::spawn(async move {
            if let Err(e) = serve_async(stream, idle).await {
                report(&e);
            }
        })
        .detach();
    }
}

fn main() -> io::Result<()> {
    const USAGE: &str = "usage: http_hello [--async] [--idle-ms N] [--loops N] [ADDR]";
    let mut use_async = false;
    let mut addr = "127.0.0.1:8080".to_string();
    let mut idle = http::IDLE;
    let mut loops = 1;
    let mut args = std::env::args().skip(1);
    let positive = |value: Option<String>, option: &str| -> u64 {
        match value.and_then(|v| v.parse().ok()) {
            Some(n) if n > 0 => n,
            _ => {
                eprintln!("http_hello: {option} needs a positive number\n{USAGE}");
                std::process::exit(2);
            }
        }
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--async" => use_async = true,
            "--idle-ms" => idle = Duration::from_millis(positive(args.next(), "--idle-ms")),
            "--loops" => loops = positive(args.next(), "--loops") as usize,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            a if a.starts_with('-') => {
                eprintln!("http_hello: unknown option {a}\n{USAGE}");
                std::process::exit(2);
            }
            a => addr = a.to_string(),
        }
    }
    let model = if use_async { "async" } else { "fibers" };
    if loops > 1 {
        // A listener per loop on one port; each loop serves in the chosen model.
        let addr = std::net::ToSocketAddrs::to_socket_addrs(addr.as_str())?
            .next()
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "no address to bind"))?;
        let rt = fiberloop::Runtime::builder().loops(loops).build()?;
        let (bound, servers) = rt.handle().listen_each_loop(addr, move |listener| {
            if use_async {
                let _ = fiberloop::wait(serve_tasks(listener.into(), idle));
            } else {
                serve_fibers(listener, idle);
            }
        })?;
        println!("http_hello ({model}, {loops} loops) listening on http://{bound}");
        for server in servers {
            let _ = server.join();
        }
        return Ok(());
    }
    if use_async {
        fiberloop::block_on(async move {
            let listener = fiberloop::async_net::TcpListener::bind(addr.as_str()).await?;
            println!(
                "http_hello ({model}) listening on http://{}",
                listener.local_addr()?
            );
            serve_tasks(listener, idle).await;
            Ok(())
        })
    } else {
        fiberloop::run(move || {
            let listener = fiberloop::net::TcpListener::bind(addr.as_str())?;
            println!(
                "http_hello ({model}) listening on http://{}",
                listener.local_addr()?
            );
            serve_fibers(listener, idle);
            Ok(())
        })
    }
}
