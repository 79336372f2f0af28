//! The echo server of `echo_server.rs`, written with async/await on the same
//! loop: same protocol and output, one loop only (no `--loops`). Read the two
//! side by side; what changes:
//! - the handler gains `async` and every read, write and accept an `.await`;
//! - the sockets come from `async_net`, the byte traits from `futures_lite`;
//! - `main` enters the loop with `block_on(async { .. })`, not `run(|| ..)`;
//! - `task::spawn` takes a future, and its handle is `.detach()`ed: dropping an
//!   async task's handle cancels the task, where a fiber's handle detaches.
//!
//! Step 10 of docs/learn.md: after `async_from_scratch`, before `echo_protocol`.
//!
//! Run: `cargo run --release --example echo_server_async -- [--verbose] [ADDR]`
//! (default `127.0.0.1:7000`), then `echo_client` or `nc 127.0.0.1 7000`.
//! `--verbose` prints a line when a connection's task starts and one when it
//! ends, as `echo_server --verbose` does.

use fiberloop::async_net::{TcpListener, TcpStream};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// Echoes until the client closes; returns how many reads and bytes.
async fn handle(mut stream: TcpStream) -> std::io::Result<(u64, u64)> {
    stream.set_nodelay(true)?;
    let mut buf = [0; 16 * 1024];
    let (mut reads, mut bytes) = (0, 0);
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok((reads, bytes)); // the client closed
        }
        stream.write_all(&buf[..n]).await?;
        reads += 1;
        bytes += n as u64;
    }
}

fn main() -> std::io::Result<()> {
    let mut addr = "127.0.0.1:7000".to_string();
    let mut verbose = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "-v" | "--verbose" => verbose = true,
            "-h" | "--help" => {
                println!("usage: echo_server_async [--verbose] [ADDR]");
                return Ok(());
            }
            a => addr = a.to_string(),
        }
    }
    fiberloop::block_on(async move {
        let listener = TcpListener::bind(addr.as_str()).await?;
        println!(
            "echo server (an async task per connection) listening on {}",
            listener.local_addr()?
        );
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    if verbose {
                        println!("{peer}: connected, served by an async task");
                    }
                    fiberloop::task::spawn(async move {
                        match handle(stream).await {
                            Ok((reads, bytes)) if verbose => {
                                println!("{peer}: closed after {reads} reads, {bytes} B echoed");
                            }
                            Ok(_) => {}
                            Err(e) => eprintln!("connection ended: {e}"),
                        }
                    })
                    .detach();
                }
                // Out of descriptors, for example: accept backs off by itself.
                Err(e) => eprintln!("accept failed: {e}"),
            }
        }
    })
}
