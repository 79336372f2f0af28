//! N concurrent echo clients, each verifying every byte it gets back.
//!
//! Run: `cargo run --release --example echo_client -- [ADDR] [CONNECTIONS] [ROUNDS] [SIZE]`
//! (defaults `127.0.0.1:7000 100 1000 64`) against `echo_server`, or any echo
//! service. Prints round trips per second and exits non-zero if any byte came
//! back wrong or a connection failed.

use std::io::{Read, Write};
use std::time::Instant;

use fiberloop::net::TcpStream;

fn client(addr: String, id: usize, rounds: usize, size: usize) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr.as_str())?;
    stream.set_nodelay(true)?;
    let mut back = vec![0; size];
    for round in 0..rounds {
        let msg: Vec<u8> = (0..size).map(|i| (id + round + i) as u8).collect();
        stream.write_all(&msg)?;
        stream.read_exact(&mut back)?;
        if back != msg {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("connection {id}, round {round}: echoed bytes differ"),
            ));
        }
    }
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7000".into());
    let mut number = |default: usize| args.next().and_then(|s| s.parse().ok()).unwrap_or(default);
    let (connections, rounds, size) = (number(100), number(1000), number(64));

    let start = Instant::now();
    let failures = fiberloop::run(move || {
        let clients: Vec<_> = (0..connections)
            .map(|id| {
                let addr = addr.clone();
                fiberloop::spawn(move || client(addr, id, rounds, size))
            })
            .collect();
        let mut failures = 0;
        for c in clients {
            if let Err(e) = c.join().expect("client fiber panicked") {
                eprintln!("{e}");
                failures += 1;
            }
        }
        failures
    });
    let elapsed = start.elapsed();
    let plural = if connections == 1 { "" } else { "s" };
    let finished = connections - failures;
    if finished == 0 {
        println!("{connections} connection{plural}: every one failed, no round trip completed");
        std::process::exit(1);
    }
    // The rate counts the connections that finished all their rounds.
    println!(
        "{connections} connection{plural} × {rounds} round trips of {size} B: {:.0} round trips/s, {failures} failed",
        (finished * rounds) as f64 / elapsed.as_secs_f64()
    );
    if failures > 0 {
        std::process::exit(1);
    }
}
