//! Serving on every loop of a runtime: a `SO_REUSEPORT` listener per loop
//! (the kernel spreads connections) and one acceptor handing connections
//! off to the runtime; every byte of 1,000 connections over 2 loops checked.

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fiberloop::net::{TcpListener, TcpStream};
use fiberloop::{Runtime, RuntimeHandle};

const CONNECTIONS: usize = 1000;
const LOOPS: usize = 2;

/// Echoes until the peer closes, counting the connection for its loop.
fn echo(mut stream: TcpStream, served: &[AtomicUsize]) {
    let index = RuntimeHandle::current_loop().expect("served on a runtime loop");
    served[index].fetch_add(1, Ordering::SeqCst);
    let mut buf = [0; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// `CONNECTIONS` clients, each sending a payload naming it and reading it
/// back, from fibers on a client loop of this thread.
fn clients(addr: SocketAddr) {
    fiberloop::run(move || {
        let fibers: Vec<_> = (0..CONNECTIONS)
            .map(|i| {
                fiberloop::spawn(move || {
                    let mut stream = TcpStream::connect(addr).expect("connect");
                    stream
                        .set_read_timeout(Some(Duration::from_secs(20)))
                        .unwrap();
                    let payload: Vec<u8> = format!("connection {i:04} ")
                        .bytes()
                        .cycle()
                        .take(64 + i % 700)
                        .collect();
                    stream.write_all(&payload).unwrap();
                    let mut back = vec![0; payload.len()];
                    stream.read_exact(&mut back).expect("the echo came back");
                    assert_eq!(back, payload, "connection {i}: every byte");
                })
            })
            .collect();
        for fiber in fibers {
            fiber.join().unwrap();
        }
    });
}

/// Every connection was served, and each loop served some of them.
fn assert_every_loop_served_some(served: &[AtomicUsize]) {
    let counts: Vec<usize> = served.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(counts.iter().sum::<usize>(), CONNECTIONS, "{counts:?}");
    assert!(
        counts.iter().all(|&c| c > 0),
        "every loop served some: {counts:?}"
    );
}

fn raise_fd_limit() {
    let needed = (4 * CONNECTIONS + 256) as u64;
    if util::fd_soft_limit() < needed {
        util::set_fd_soft_limit(needed);
    }
}

#[test]
fn a_reuseport_listener_per_loop_spreads_connections_over_every_loop() {
    raise_fd_limit();
    let rt = Runtime::builder().loops(LOOPS).build().unwrap();
    let served: Arc<[AtomicUsize]> = (0..LOOPS).map(|_| AtomicUsize::new(0)).collect();
    let s = served.clone();
    let (addr, _servers) = rt
        .handle()
        .listen_each_loop("127.0.0.1:0".parse().unwrap(), move |listener| {
            // Every listener was bound and listening before this returned.
            loop {
                let Ok((stream, _)) = listener.accept() else {
                    continue;
                };
                let s = s.clone();
                fiberloop::spawn(move || echo(stream, &s));
            }
        })
        .unwrap();
    clients(addr);
    assert_every_loop_served_some(&served);
}

#[test]
fn one_acceptor_hands_connections_off_to_every_loop() {
    raise_fd_limit();
    let rt = Runtime::builder().loops(LOOPS).build().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served: Arc<[AtomicUsize]> = (0..LOOPS).map(|_| AtomicUsize::new(0)).collect();
    let s = served.clone();
    rt.handle()
        .spawn_on(0, move || {
            let rt = RuntimeHandle::current();
            loop {
                let Ok((stream, _)) = listener.accept() else {
                    continue;
                };
                let s = s.clone();
                // A stream not yet waited on registers with the loop that
                // first waits on it: the one the runtime places the fiber on.
                if rt.spawn(move || echo(stream, &s)).is_err() {
                    return;
                }
            }
        })
        .unwrap();
    clients(addr);
    assert_every_loop_served_some(&served);
}
