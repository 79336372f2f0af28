//! An echo server in blocking style: one fiber per connection.
//!
//! Step 8 of docs/learn.md: after `hello`, before `async_from_scratch`.
//!
//! Run: `cargo run --release --example echo_server -- [--verbose] [--loops N] [ADDR]`
//! (default `127.0.0.1:7000`, one loop), then talk to it with `echo_client`
//! or `nc 127.0.0.1 7000`. With `--verbose` it prints a line when a
//! connection's fiber starts and one when it ends, with what it echoed: quiet
//! by default, so that it can serve a benchmark.
//!
//! The handler is the code you would write with one OS thread per connection;
//! here each `read` and `write_all` parks only its fiber, and one thread serves
//! thousands of connections. With `--loops N`, N loops (threads) each run a
//! listener on the same port (`SO_REUSEPORT`), and the kernel spreads the
//! connections over them; the handler does not change.

use std::io::{Read, Write};
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, Ordering};

use fiberloop::net::{TcpListener, TcpStream};

/// `--verbose`: a line per connection's start and end.
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Echoes until the client closes; returns how many reads and bytes.
fn handle(mut stream: TcpStream) -> std::io::Result<(u64, u64)> {
    stream.set_nodelay(true)?;
    let mut buf = [0; 16 * 1024];
    let (mut reads, mut bytes) = (0, 0);
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok((reads, bytes)); // the client closed
        }
        stream.write_all(&buf[..n])?;
        reads += 1;
        bytes += n as u64;
    }
}

/// Accepts forever, a fiber per connection.
fn serve(listener: TcpListener) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                fiberloop::spawn(move || {
                    let verbose = VERBOSE.load(Ordering::Relaxed);
                    let peer = stream
                        .peer_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    if verbose {
                        let me = fiberloop::current();
                        println!("{peer}: connected, served by fiber {}", me.id());
                    }
                    match handle(stream) {
                        Ok((reads, bytes)) if verbose => {
                            println!("{peer}: closed after {reads} reads, {bytes} B echoed");
                        }
                        Ok(_) => {}
                        Err(e) => eprintln!("connection ended: {e}"),
                    }
                });
            }
            // Out of descriptors, for example: accept backs off by itself.
            Err(e) => eprintln!("accept failed: {e}"),
        }
    }
}

fn main() -> std::io::Result<()> {
    const USAGE: &str = "usage: echo_server [--verbose] [--loops N] [ADDR]";
    let mut addr = "127.0.0.1:7000".to_string();
    let mut loops = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--loops" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => loops = n,
                _ => {
                    eprintln!("echo_server: --loops needs a positive number\n{USAGE}");
                    std::process::exit(2);
                }
            },
            "-v" | "--verbose" => VERBOSE.store(true, Ordering::Relaxed),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            a if a.starts_with('-') => {
                eprintln!("echo_server: unknown option {a}\n{USAGE}");
                std::process::exit(2);
            }
            a => addr = a.to_string(),
        }
    }
    if loops == 1 {
        return fiberloop::run(move || {
            let listener = TcpListener::bind(addr.as_str())?;
            println!(
                "echo server (a fiber per connection) listening on {}",
                listener.local_addr()?
            );
            serve(listener);
            Ok(())
        });
    }
    // Several loops: a listener per loop on one port.
    let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")
    })?;
    let rt = fiberloop::Runtime::builder().loops(loops).build()?;
    let (bound, servers) = rt.handle().listen_each_loop(addr, serve)?;
    println!("echo server (a fiber per connection, {loops} loops) listening on {bound}");
    for server in servers {
        let _ = server.join();
    }
    Ok(())
}
