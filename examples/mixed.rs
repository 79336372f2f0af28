//! Both models on one loop: a blocking-style fiber server with async clients,
//! then an async server with fiber clients. One thread, one reactor.
//!
//! Run: `cargo run --example mixed`
//!
//! Expected output (the order of the client lines may vary):
//!
//! ```text
//! fiber server, async clients: 20 replies, all correct
//! async server, fiber clients: 20 replies, all correct
//! ```

use std::io::{BufRead, BufReader, Write};

use fiberloop::{async_net, net};
use futures_lite::{AsyncBufReadExt, AsyncWriteExt};

const CLIENTS: usize = 20;

/// Upper-cases one line per connection: blocking style, in a fiber.
fn fiber_server(listener: net::TcpListener) {
    for stream in listener.incoming().take(CLIENTS) {
        let stream = stream.expect("accept");
        fiberloop::spawn(move || {
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).expect("read");
            (&stream)
                .write_all(line.to_uppercase().as_bytes())
                .expect("write");
        });
    }
}

/// The same service, async.
async fn async_server(listener: async_net::TcpListener) {
    for _ in 0..CLIENTS {
        let (stream, _) = listener.accept().await.expect("accept");
        fiberloop::task::spawn(async move {
            let mut line = String::new();
            futures_lite::io::BufReader::new(&stream)
                .read_line(&mut line)
                .await
                .expect("read");
            (&stream)
                .write_all(line.to_uppercase().as_bytes())
                .await
                .expect("write");
        })
        .detach();
    }
}

fn main() -> std::io::Result<()> {
    fiberloop::run(|| -> std::io::Result<()> {
        // 1. A fiber server; each client is an async task.
        let listener = net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = fiberloop::spawn(move || fiber_server(listener));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                fiberloop::task::spawn(async move {
                    let mut s = async_net::TcpStream::connect(addr).await?;
                    s.write_all(format!("client {i}\n").as_bytes()).await?;
                    let mut reply = String::new();
                    futures_lite::io::BufReader::new(&s)
                        .read_line(&mut reply)
                        .await?;
                    Ok::<_, std::io::Error>(reply == format!("CLIENT {i}\n"))
                })
            })
            .collect();
        let correct = clients
            .into_iter()
            .filter_map(|c| fiberloop::wait(c).ok())
            .filter(|r| matches!(r, Ok(Ok(true))))
            .count();
        server.join().expect("fiber server");
        println!(
            "fiber server, async clients: {CLIENTS} replies, {}",
            verdict(correct)
        );

        // 2. An async server; each client is a fiber.
        let listener = net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = fiberloop::task::spawn(async_server(listener.into()));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                fiberloop::spawn(move || -> std::io::Result<bool> {
                    let mut s = net::TcpStream::connect(addr)?;
                    writeln!(s, "client {i}")?;
                    let mut reply = String::new();
                    BufReader::new(&s).read_line(&mut reply)?;
                    Ok(reply == format!("CLIENT {i}\n"))
                })
            })
            .collect();
        let correct = clients
            .into_iter()
            .map(|c| c.join())
            .filter(|r| matches!(r, Ok(Ok(true))))
            .count();
        fiberloop::wait(server)
            .expect("not cancelled")
            .expect("async server");
        println!(
            "async server, fiber clients: {CLIENTS} replies, {}",
            verdict(correct)
        );
        Ok(())
    })
}

fn verdict(correct: usize) -> String {
    if correct == CLIENTS {
        "all correct".to_string()
    } else {
        format!("{} WRONG", CLIENTS - correct)
    }
}
