//! Echo server CPU per round trip: fiber server vs async server (same loop
//! machinery) vs tokio current_thread, with one shared load generator.
//!
//! Run: `cargo bench --bench echo_cpu` (about 20 s); with
//! `cargo bench --features hook --bench echo_cpu`, std's own sockets in
//! fibers (the `hook` feature) are measured too, as `fiber-std`.
//!
//! Method: each server runs on its own thread and accepts `CONNS` connections;
//! one client thread (plain std sockets, the same code for every model) keeps
//! one 64-byte request outstanding per connection, round-robin, for `ROUNDS`
//! rounds. The server thread reads its own CPU time (`RUSAGE_THREAD`) around
//! the run, so the figure is the server's CPU per round trip, independent of
//! the client. Models are interleaved and each figure is the median of `REPS`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const CONNS: usize = 100;
const ROUNDS: usize = 200;
const SIZE: usize = 64;
const REPS: usize = 5;

fn thread_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the buffer we pass.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
    // SAFETY: filled above (zeroed otherwise).
    let u = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The fiber server: a fiber per accepted connection echoing until EOF;
/// sends the loop thread's CPU time once all have ended.
fn fiber_echo<S: Read + Write + 'static>(
    mut accept: impl FnMut() -> S,
    cpu_tx: &mpsc::Sender<Duration>,
) {
    let start = thread_cpu();
    let handlers: Vec<_> = (0..CONNS)
        .map(|_| {
            let mut s = accept();
            fiberloop::spawn(move || {
                let mut buf = [0; SIZE];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => s.write_all(&buf[..n]).unwrap(),
                    }
                }
            })
        })
        .collect();
    handlers.into_iter().for_each(|h| h.join().unwrap());
    cpu_tx.send(thread_cpu() - start).unwrap();
}

/// Starts a server thread for `model`; returns its address and a receiver for
/// its CPU time once all connections have closed.
fn server(model: &'static str) -> (SocketAddr, mpsc::Receiver<Duration>) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (cpu_tx, cpu_rx) = mpsc::channel();
    thread::spawn(move || match model {
        "fiber" => fiberloop::run(move || {
            let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            fiber_echo(|| listener.accept().unwrap().0, &cpu_tx);
        }),
        // std's own sockets in fibers, parked by the `hook` feature.
        #[cfg(feature = "hook")]
        "fiber-std" => fiberloop::run(move || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            fiber_echo(|| listener.accept().unwrap().0, &cpu_tx);
        }),
        "async" => fiberloop::block_on(async move {
            use futures_lite::{AsyncReadExt, AsyncWriteExt};
            let listener = fiberloop::async_net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let start = thread_cpu();
            let mut handlers = Vec::new();
            for _ in 0..CONNS {
                let (mut s, _) = listener.accept().await.unwrap();
                handlers.push(fiberloop::task::spawn(async move {
                    let mut buf = [0; SIZE];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => s.write_all(&buf[..n]).await.unwrap(),
                        }
                    }
                }));
            }
            for h in handlers {
                h.await.unwrap();
            }
            cpu_tx.send(thread_cpu() - start).unwrap();
        }),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let start = thread_cpu();
                let mut handlers = Vec::new();
                for _ in 0..CONNS {
                    let (mut s, _) = listener.accept().await.unwrap();
                    handlers.push(tokio::spawn(async move {
                        let mut buf = [0; SIZE];
                        loop {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => s.write_all(&buf[..n]).await.unwrap(),
                            }
                        }
                    }));
                }
                for h in handlers {
                    h.await.unwrap();
                }
                cpu_tx.send(thread_cpu() - start).unwrap();
            }),
    });
    (addr_rx.recv().unwrap(), cpu_rx)
}

/// The shared load generator: returns wall time for all round trips.
fn client(addr: SocketAddr) -> Duration {
    let mut conns: Vec<TcpStream> = (0..CONNS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    for c in &conns {
        c.set_nodelay(true).unwrap();
    }
    let msg = [7u8; SIZE];
    let mut back = [0u8; SIZE];
    let start = Instant::now();
    for _ in 0..ROUNDS {
        for c in conns.iter_mut() {
            c.write_all(&msg).unwrap();
        }
        for c in conns.iter_mut() {
            c.read_exact(&mut back).unwrap();
        }
    }
    start.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // With `--features hook`, std's sockets in fibers too ("fiber-std").
    let models: &[&str] = if cfg!(feature = "hook") {
        &["fiber", "fiber-std", "async", "tokio"]
    } else {
        &["fiber", "async", "tokio"]
    };
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); models.len()];
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); models.len()];
    let trips = (CONNS * ROUNDS) as f64;
    for rep in 0..REPS {
        for (i, model) in models.iter().enumerate() {
            let (addr, cpu_rx) = server(model);
            let elapsed = client(addr); // closing the connections ends the server
            let server_cpu = cpu_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("server finished");
            cpu[i].push(server_cpu.as_nanos() as f64 / trips);
            wall[i].push(elapsed.as_nanos() as f64 / trips);
        }
        eprintln!("repetition {}/{REPS} done", rep + 1);
    }
    println!(
        "echo, {CONNS} connections, {SIZE} B, {ROUNDS} rounds; medians of {REPS}, interleaved"
    );
    println!(
        "{:<10} {:>22} {:>20} {:>12}",
        "model", "server CPU / round trip", "wall / round trip", "vs fiber"
    );
    let fiber_cpu = median(cpu[0].clone());
    for (i, model) in models.iter().enumerate() {
        let c = median(cpu[i].clone());
        println!(
            "{model:<10} {:>19.0} ns {:>17.0} ns {:>11.2}×",
            c,
            median(wall[i].clone()),
            c / fiber_cpu
        );
    }
}
