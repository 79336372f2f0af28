//! The echo server of `echo_server.rs`, written with async/await on the same
//! loop: same protocol and arguments. Read the two side by side; what changes:
//! - the handler gains `async` and every read, write and accept an `.await`;
//! - the sockets come from `async_net`, the byte traits from `futures_lite`;
//! - `main` enters the loop with `block_on(async { .. })`, not `run(|| ..)`;
//! - `task::spawn` takes a future, and its handle is `.detach()`ed: dropping an
//!   async task's handle cancels the task, where a fiber's handle detaches.
//!
//! Run: `cargo run --release --example echo_server_async -- [ADDR]` (default
//! `127.0.0.1:7000`), then `echo_client` or `nc 127.0.0.1 7000`.

use fiberloop::async_net::{TcpListener, TcpStream};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

async fn handle(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = [0; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(()); // the client closed
        }
        stream.write_all(&buf[..n]).await?;
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    fiberloop::block_on(async move {
        let listener = TcpListener::bind(addr.as_str()).await?;
        println!(
            "echo server (an async task per connection) listening on {}",
            listener.local_addr()?
        );
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    fiberloop::task::spawn(async move {
                        if let Err(e) = handle(stream).await {
                            eprintln!("connection ended: {e}");
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
