//! Both models on one loop: a blocking-style fiber server with async clients,
//! then an async server with fiber clients. One thread, one reactor.
//!
//! Step 10 of docs/learn.md: after `async_from_scratch`, before `echo_protocol`.
//!
//! Run: `cargo run --example mixed`
//!
//! Each part prints what its first three clients and their handlers do, in
//! the order the one thread ran them, so the two kinds of task can be seen
//! taking turns. Then it checks all 20 replies. The start of the output (the exact
//! interleaving may vary):
//!
//! ```text
//! 1. a fiber server, async clients
//!    1  async client 0  connected, sent "client 0"
//!    2  async client 1  connected, sent "client 1"
//!    3  async client 2  connected, sent "client 2"
//!    4  fiber server 0  accepted; its handler fiber spawned
//!    …
//! fiber server, async clients: 20 replies, all correct
//! ```

use std::io::{BufRead, BufReader, Write};

use fiberloop::{async_net, net};
use futures_lite::{AsyncBufReadExt, AsyncWriteExt};

const CLIENTS: usize = 20;
/// How many of them (and of the server's connections) say what they do.
const SHOWN: usize = 3;

/// Prints one step, numbered in the order the loop ran it.
fn show(who: &str, i: usize, what: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static STEP: AtomicUsize = AtomicUsize::new(1);
    if i < SHOWN {
        let step = STEP.fetch_add(1, Ordering::Relaxed);
        println!("  {step:>3}  {:<15} {what}", format!("{who} {i}"));
    }
}

/// Upper-cases one line per connection: blocking style, in a fiber.
fn fiber_server(listener: net::TcpListener) {
    for (n, stream) in listener.incoming().take(CLIENTS).enumerate() {
        let stream = stream.expect("accept");
        show("fiber server", n, "accepted; its handler fiber spawned");
        fiberloop::spawn(move || {
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).expect("read");
            show(
                "fiber handler",
                n,
                &format!("read {:?}, replying", line.trim()),
            );
            (&stream)
                .write_all(line.to_uppercase().as_bytes())
                .expect("write");
        });
    }
}

/// The same service, async.
async fn async_server(listener: async_net::TcpListener) {
    for n in 0..CLIENTS {
        let (stream, _) = listener.accept().await.expect("accept");
        show("async server", n, "accepted; its handler task spawned");
        fiberloop::task::spawn(async move {
            let mut line = String::new();
            futures_lite::io::BufReader::new(&stream)
                .read_line(&mut line)
                .await
                .expect("read");
            show(
                "async handler",
                n,
                &format!("read {:?}, replying", line.trim()),
            );
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
        println!("1. a fiber server, async clients");
        let listener = net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = fiberloop::spawn(move || fiber_server(listener));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                fiberloop::task::spawn(async move {
                    let mut s = async_net::TcpStream::connect(addr).await?;
                    s.write_all(format!("client {i}\n").as_bytes()).await?;
                    show(
                        "async client",
                        i,
                        &format!("connected, sent \"client {i}\""),
                    );
                    let mut reply = String::new();
                    futures_lite::io::BufReader::new(&s)
                        .read_line(&mut reply)
                        .await?;
                    show("async client", i, &format!("got {:?}", reply.trim()));
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
        println!("2. an async server, fiber clients");
        let listener = net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = fiberloop::task::spawn(async_server(listener.into()));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                fiberloop::spawn(move || -> std::io::Result<bool> {
                    let mut s = net::TcpStream::connect(addr)?;
                    writeln!(s, "client {i}")?;
                    show(
                        "fiber client",
                        i,
                        &format!("connected, sent \"client {i}\""),
                    );
                    let mut reply = String::new();
                    BufReader::new(&s).read_line(&mut reply)?;
                    show("fiber client", i, &format!("got {:?}", reply.trim()));
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
