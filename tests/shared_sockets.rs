//! Many waiters on one socket: fibers, async tasks and loops sharing a
//! listener, a datagram socket or a stream's clones; none is ever left
//! asleep with its data waiting, and one that gives up removes only itself.
//!
//! Every wait here runs under a `fiberloop::timeout`, so a lost wake-up
//! fails the test instead of hanging it.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use fiberloop::net::{TcpListener, TcpStream, UdpSocket};

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn two_fibers_accepting_on_one_listener_both_wake() {
    fiberloop::run(|| {
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let acceptors: Vec<_> = (0..2)
            .map(|_| {
                let listener = listener.clone();
                fiberloop::spawn(move || fiberloop::timeout(LIMIT, || listener.accept().is_ok()))
            })
            .collect();
        fiberloop::yield_now(); // both are parked in accept now
        let _clients: Vec<_> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for acceptor in acceptors {
            assert_eq!(acceptor.join().unwrap(), Ok(true));
        }
    });
}

#[test]
fn four_fibers_in_recv_from_get_four_datagrams() {
    fiberloop::run(|| {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = socket.local_addr().unwrap();
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let socket = socket.clone();
                fiberloop::spawn(move || {
                    let mut buf = [0; 16];
                    fiberloop::timeout(LIMIT, || {
                        socket.recv_from(&mut buf).map(|(n, _)| buf[..n].to_vec())
                    })
                })
            })
            .collect();
        fiberloop::yield_now();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..4u8 {
            sender.send_to(&[i], addr).unwrap();
        }
        let mut got: Vec<u8> = readers
            .into_iter()
            .map(|r| r.join().unwrap().expect("in time").unwrap()[0])
            .collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 3]);
    });
}

#[test]
fn fibers_and_async_tasks_share_one_listener() {
    fiberloop::run(|| {
        let listener = Arc::new(fiberloop::async_net::TcpListener::from(
            TcpListener::bind("127.0.0.1:0").unwrap(),
        ));
        let addr = listener.local_addr().unwrap();
        let task = fiberloop::task::spawn({
            let listener = listener.clone();
            async move {
                let accepted = fiberloop::time::timeout(LIMIT, listener.accept()).await;
                accepted.map(|r| r.is_ok())
            }
        });
        // A fiber waits on the same source through the bridge.
        let fiber = fiberloop::spawn(move || {
            fiberloop::timeout(LIMIT, || {
                fiberloop::wait(listener.accept()).unwrap().is_ok()
            })
        });
        fiberloop::yield_now();
        let _clients: Vec<_> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        assert!(fiber.join().unwrap().expect("in time"));
        assert!(fiberloop::wait(task).unwrap().unwrap().expect("in time"));
    });
}

#[test]
fn two_readers_of_one_stream_both_get_data() {
    fiberloop::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let mut stream = server.try_clone().unwrap();
                fiberloop::spawn(move || {
                    let mut byte = [0];
                    fiberloop::timeout(LIMIT, || stream.read_exact(&mut byte).map(|()| byte[0]))
                })
            })
            .collect();
        fiberloop::yield_now();
        client.write_all(&[7, 9]).unwrap();
        let mut got: Vec<u8> = readers
            .into_iter()
            .map(|r| r.join().unwrap().expect("in time").unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, [7, 9]);
    });
}

#[test]
fn one_udp_socket_read_from_two_loops() {
    let socket = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    socket.set_nonblocking(true).unwrap();
    let addr = socket.local_addr().unwrap();
    let shared = Arc::new(UdpSocket::from_std(Arc::try_unwrap(socket).unwrap()).unwrap());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let shared = shared.clone();
            let ready = ready_tx.clone();
            std::thread::spawn(move || {
                fiberloop::run(move || {
                    let reader = fiberloop::spawn(move || {
                        let mut buf = [0; 8];
                        fiberloop::timeout(LIMIT, || {
                            shared.recv(&mut buf).map(|n| buf[..n].to_vec())
                        })
                    });
                    fiberloop::yield_now(); // parked in recv
                    ready.send(()).unwrap();
                    reader.join().unwrap().expect("in time").unwrap()
                })
            })
        })
        .collect();
    ready_rx.recv().unwrap();
    ready_rx.recv().unwrap();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.send_to(b"a", addr).unwrap();
    sender.send_to(b"b", addr).unwrap();
    let mut got: Vec<Vec<u8>> = loops.into_iter().map(|t| t.join().unwrap()).collect();
    got.sort();
    assert_eq!(got, [b"a".to_vec(), b"b".to_vec()]);
}

/// Fills the socket's send buffer (and the peer's receive buffer).
fn fill(stream: &TcpStream) {
    stream
        .set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let chunk = [0u8; 64 * 1024];
    while (&*stream).write(&chunk).is_ok() {}
    stream.set_write_timeout(None).unwrap();
}

#[test]
fn a_writer_that_times_out_does_not_unhook_another_writer() {
    fiberloop::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        fill(&client);
        let mut blocked = client.try_clone().unwrap();
        let writer = fiberloop::spawn(move || {
            fiberloop::timeout(LIMIT, || blocked.write_all(&[1; 64 * 1024]))
        });
        fiberloop::yield_now(); // W is parked in write
        let impatient = client.try_clone().unwrap();
        impatient
            .set_write_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let err = (&impatient).write(&[2; 64 * 1024]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        // The peer resets: W must wake with the error, not sleep forever.
        util::reset_on_close(&peer);
        drop(peer);
        let outcome = writer
            .join()
            .unwrap()
            .expect("W woke before the test's limit");
        let err = outcome.unwrap_err();
        assert!(util::peer_gone(&err), "{err:?}");
    });
}

#[test]
fn a_loop_that_closes_hands_its_waiters_to_the_others() {
    // Loop A registers the listener (its fiber waits, then gives up) and
    // closes while a fiber on loop B waits on the same listener: B must be
    // served after A is gone.
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let on_b = {
        let listener = listener.clone();
        std::thread::spawn(move || {
            fiberloop::run(move || {
                ready_rx.recv().unwrap(); // A has registered it
                fiberloop::timeout(LIMIT, || listener.accept().is_ok())
            })
        })
    };
    fiberloop::run(move || {
        let waiter = fiberloop::spawn({
            let listener = listener.clone();
            move || fiberloop::timeout(Duration::from_millis(300), || listener.accept().is_ok())
        });
        fiberloop::yield_now(); // registered with this loop now
        ready_tx.send(()).unwrap();
        assert!(waiter.join().unwrap().is_err(), "no client yet");
    });
    std::thread::sleep(Duration::from_millis(50));
    let _client = std::net::TcpStream::connect(addr).unwrap();
    assert_eq!(on_b.join().unwrap(), Ok(true));
}

#[test]
fn an_async_waiter_that_times_out_does_not_unhook_a_fiber() {
    fiberloop::run(|| {
        let listener = Arc::new(fiberloop::async_net::TcpListener::from(
            TcpListener::bind("127.0.0.1:0").unwrap(),
        ));
        let addr = listener.local_addr().unwrap();
        let fiber = fiberloop::spawn({
            let listener = listener.clone();
            move || {
                fiberloop::timeout(LIMIT, || {
                    fiberloop::wait(listener.accept()).unwrap().is_ok()
                })
            }
        });
        // An async task waits on the same listener and gives up first: its
        // future is dropped, and only its own waker may leave the list.
        let impatient = fiberloop::task::spawn(async move {
            fiberloop::time::timeout(Duration::from_millis(20), listener.accept())
                .await
                .is_err()
        });
        assert!(fiberloop::wait(impatient).unwrap().unwrap(), "it timed out");
        let _client = TcpStream::connect(addr).unwrap();
        assert!(fiber.join().unwrap().expect("the fiber was still served"));
    });
}
