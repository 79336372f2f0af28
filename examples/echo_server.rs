//! An echo server in blocking style: one fiber per connection.
//!
//! Run: `cargo run --release --example echo_server [ADDR]` (default
//! `127.0.0.1:7000`), then talk to it with `echo_client` or `nc 127.0.0.1 7000`.
//!
//! The handler is the code you would write with one OS thread per connection;
//! here each `read` and `write_all` parks only its fiber, and one thread serves
//! thousands of connections.

use std::io::{Read, Write};

use fiberloop::net::{TcpListener, TcpStream};

fn handle(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = [0; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(()); // the client closed
        }
        stream.write_all(&buf[..n])?;
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    fiberloop::run(move || {
        let listener = TcpListener::bind(addr.as_str())?;
        println!("echo server listening on {}", listener.local_addr()?);
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    fiberloop::spawn(move || {
                        if let Err(e) = handle(stream) {
                            eprintln!("connection ended: {e}");
                        }
                    });
                }
                // Out of descriptors, for example: accept backs off by itself.
                Err(e) => eprintln!("accept failed: {e}"),
            }
        }
        Ok(())
    })
}
