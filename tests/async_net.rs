//! Async sockets, and both models talking over the same loop.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use fiberloop::async_net::{TcpListener, TcpStream, UdpSocket};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// Spawns an async echo server task; returns its address.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    fiberloop::task::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            fiberloop::task::spawn(async move {
                let mut buf = [0; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .detach();
        }
    })
    .detach();
    addr
}

#[test]
fn a_thousand_concurrent_async_echo_connections_get_their_bytes_back() {
    const CONNECTIONS: usize = 1000;
    if util::fd_soft_limit() < 4 * CONNECTIONS as u64 {
        util::set_fd_soft_limit(4 * CONNECTIONS as u64);
    }
    let intact = fiberloop::block_on(async {
        let addr = echo_server().await;
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|id| {
                fiberloop::task::spawn(async move {
                    let mut stream = TcpStream::connect(addr).await?;
                    for round in 0..5usize {
                        let msg: Vec<u8> =
                            (0..1024).map(|i| (id * 31 + round * 7 + i) as u8).collect();
                        stream.write_all(&msg).await?;
                        let mut back = vec![0; msg.len()];
                        stream.read_exact(&mut back).await?;
                        if back != msg {
                            return Ok::<_, std::io::Error>(false);
                        }
                    }
                    Ok(true)
                })
            })
            .collect();
        let mut intact = 0;
        for c in clients {
            if c.await.unwrap().unwrap() {
                intact += 1;
            }
        }
        intact
    });
    assert_eq!(intact, CONNECTIONS);
}

#[test]
fn a_fiber_and_an_async_task_talk_over_one_socket_pair() {
    fiberloop::run(|| {
        let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // The server side is a fiber, in blocking style.
        let server = fiberloop::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut line = [0; 4];
            for _ in 0..10 {
                s.read_exact(&mut line).unwrap();
                assert_eq!(&line, b"ping");
                s.write_all(b"pong").unwrap();
            }
        });
        // The client side is an async task on the same loop.
        let client = fiberloop::task::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut reply = [0; 4];
            for _ in 0..10 {
                s.write_all(b"ping").await.unwrap();
                s.read_exact(&mut reply).await.unwrap();
                assert_eq!(&reply, b"pong");
            }
            "client done"
        });
        assert_eq!(fiberloop::wait(client).unwrap().unwrap(), "client done");
        server.join().unwrap();
    });
}

#[test]
fn a_connection_changes_faces() {
    fiberloop::run(|| {
        let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = fiberloop::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            // Accepted in a fiber, served by an async task.
            let mut s = TcpStream::from(s);
            fiberloop::wait(async move {
                let mut b = [0; 3];
                s.read_exact(&mut b).await.unwrap();
                s.write_all(&b).await.unwrap();
            })
            .unwrap();
        });
        let mut c = fiberloop::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"abc").unwrap();
        let mut b = [0; 3];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"abc");
        server.join().unwrap();
    });
}

#[test]
fn async_connect_to_a_closed_port_is_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err =
        fiberloop::block_on(
            async move { TcpStream::connect(("127.0.0.1", port)).await.unwrap_err() },
        );
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn async_read_with_a_timeout() {
    fiberloop::block_on(async {
        let listener = TcpListener::bind("localhost:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _server = fiberloop::task::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            fiberloop::time::sleep(Duration::from_secs(3600)).await;
            drop(s);
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        let r = fiberloop::time::timeout(Duration::from_millis(10), c.read(&mut [0; 4])).await;
        assert!(r.is_err(), "no data: timed out");
    });
}

#[test]
fn async_udp_round_trip() {
    fiberloop::block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b_addr = b.local_addr().unwrap();
        let echo = fiberloop::task::spawn(async move {
            let mut buf = [0; 64];
            let (n, from) = b.recv_from(&mut buf).await.unwrap();
            b.send_to(&buf[..n], from).await.unwrap();
        });
        a.connect(b_addr).await.unwrap();
        a.send(b"datagram").await.unwrap();
        let mut buf = [0; 64];
        let n = a.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"datagram");
        echo.await.unwrap();
    });
}

#[test]
fn polling_an_async_socket_without_a_loop_is_an_error() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listener = TcpListener::from(fiberloop::net::TcpListener::from_std(std_listener).unwrap());
    // A plain thread: fiberloop::wait blocks the thread; no loop drives I/O.
    let err = fiberloop::wait(listener.accept()).unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}
