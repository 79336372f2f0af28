//! UDP in fibers.

use std::io::ErrorKind;
use std::time::Duration;

use fiberloop::net::UdpSocket;

#[test]
fn datagrams_go_both_ways_between_fibers() {
    fiberloop::run(|| {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server_addr = server.local_addr().unwrap();
        let echo = fiberloop::spawn(move || {
            let mut buf = [0; 1500];
            for _ in 0..100 {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                server.send_to(&buf[..n], from).unwrap();
            }
        });
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server_addr).unwrap();
        assert_eq!(client.peer_addr().unwrap(), server_addr);
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0; 1500];
        for i in 0..100u32 {
            client.send(&i.to_le_bytes()).unwrap();
            let n = client.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &i.to_le_bytes());
        }
        echo.join().unwrap();
    });
}

#[test]
fn recv_timeout_is_timed_out() {
    fiberloop::run(|| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let err = socket.recv_from(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
    });
}

#[test]
fn send_to_an_unresolvable_host_is_an_error() {
    fiberloop::run(|| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(socket.send_to(b"x", "not an address").is_err());
    });
}
