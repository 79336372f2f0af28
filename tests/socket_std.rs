//! The std face of every socket type: `AsFd`, `AsRawFd`, `IntoRawFd`,
//! `FromRawFd`, `From<std>` and `into_std`, on both faces; `TcpSocket`'s
//! options; UDP broadcast and multicast.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd};
use std::time::Duration;

use fiberloop::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use fiberloop::{async_net, net};

fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

#[test]
fn tcp_streams_round_trip_through_std_and_raw_descriptors_on_both_faces() {
    fiberloop::run(|| {
        let (client, server) = pair();
        let fd = client.as_raw_fd();
        // std -> fiber face -> raw -> async face -> std
        let stream = TcpStream::from(client);
        assert_eq!(stream.as_fd().as_raw_fd(), fd);
        let raw = stream.into_raw_fd();
        assert_eq!(raw, fd, "the only handle hands its own descriptor out");
        // SAFETY: `raw` is an open TCP socket nobody else owns.
        let stream = unsafe { async_net::TcpStream::from_raw_fd(raw) };
        assert_eq!(stream.as_raw_fd(), fd);
        let mut std_stream = stream.into_std().unwrap();
        std_stream.set_nonblocking(false).unwrap();
        std_stream.write_all(b"ping").unwrap();
        let mut server = server;
        let mut buf = [0; 4];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    });
}

#[test]
fn a_stream_with_clones_hands_out_a_duplicate_and_the_clones_keep_working() {
    fiberloop::run(|| {
        let (client, mut server) = pair();
        let stream = TcpStream::from(client);
        let mut clone = stream.try_clone().unwrap();
        let fd = stream.as_raw_fd();
        let std_stream = stream.into_std().unwrap();
        assert_ne!(std_stream.as_raw_fd(), fd, "a dup, since a clone is alive");
        drop(std_stream);
        clone.write_all(b"still").unwrap();
        let mut buf = [0; 5];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"still");
    });
}

#[test]
fn listeners_and_datagram_sockets_convert_both_ways() {
    fiberloop::run(|| {
        let listener = TcpListener::from(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let listener = async_net::TcpListener::from(listener);
        let std_listener = listener.into_std().unwrap();
        assert_eq!(std_listener.local_addr().unwrap(), addr);
        let listener = net::TcpListener::from(std_listener);
        let client = fiberloop::spawn(move || TcpStream::connect(addr).map(drop));
        listener.accept().unwrap();
        client.join().unwrap().unwrap();

        let udp = UdpSocket::from(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        let udp_addr = udp.local_addr().unwrap();
        let udp = async_net::UdpSocket::from_std(udp.into_std().unwrap()).unwrap();
        let udp = net::UdpSocket::from(udp);
        let raw = udp.into_raw_fd();
        // SAFETY: `raw` is an open UDP socket nobody else owns.
        let udp = unsafe { UdpSocket::from_raw_fd(raw) };
        assert_eq!(udp.local_addr().unwrap(), udp_addr);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"dgram", udp_addr).unwrap();
        let mut buf = [0; 8];
        assert_eq!(udp.recv(&mut buf).unwrap(), 5);
    });
}

#[test]
fn unix_sockets_convert_both_ways() {
    fiberloop::run(|| {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = net::UnixStream::from(a);
        let a = async_net::UnixStream::from(a);
        let mut a = net::UnixStream::from(a.into_std().unwrap());
        a.write_all(b"unix").unwrap();
        let mut b = net::UnixStream::from(b);
        let mut buf = [0; 4];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"unix");

        let dir = std::env::temp_dir().join(format!("fiberloop-std-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let listener = async_net::UnixListener::from(net::UnixListener::bind(&dir).unwrap());
        let raw = listener.into_raw_fd();
        // SAFETY: `raw` is an open Unix listener nobody else owns.
        let listener = unsafe { net::UnixListener::from_raw_fd(raw) };
        let path = dir.clone();
        let client = fiberloop::spawn(move || net::UnixStream::connect(path).map(drop));
        listener.accept().unwrap();
        client.join().unwrap().unwrap();
        std::fs::remove_file(&dir).unwrap();

        let (x, y) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let x = async_net::UnixDatagram::from_std(x).unwrap();
        let x = net::UnixDatagram::from(x.into_std().unwrap());
        x.send(b"dg").unwrap();
        let mut buf = [0; 2];
        assert_eq!(y.recv(&mut buf).unwrap(), 2);
        assert!(x.as_fd().as_raw_fd() >= 0);
    });
}

#[test]
fn tcp_socket_sets_options_before_listening_and_connecting() {
    fiberloop::run(|| {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.set_reuseport(true).unwrap();
        socket.set_recv_buffer_size(64 * 1024).unwrap();
        assert!(socket.reuseaddr().unwrap());
        assert!(socket.reuseport().unwrap());
        assert!(socket.recv_buffer_size().unwrap() >= 64 * 1024);
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let listener = socket.listen(128).unwrap();
        let server = fiberloop::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0; 3];
            s.read_exact(&mut buf).unwrap();
            buf
        });

        let client = TcpSocket::new_for_addr(addr).unwrap();
        client.set_nodelay(true).unwrap();
        client.set_keepalive(true).unwrap();
        client.set_linger(Some(Duration::from_secs(1))).unwrap();
        client.set_send_buffer_size(32 * 1024).unwrap();
        assert!(client.nodelay().unwrap());
        assert!(client.keepalive().unwrap());
        assert_eq!(client.linger().unwrap(), Some(Duration::from_secs(1)));
        assert!(client.send_buffer_size().unwrap() >= 32 * 1024);
        let mut stream = client.connect(addr).unwrap();
        // The options carry over, and the stream has the same setters.
        assert!(stream.nodelay().unwrap());
        assert!(stream.keepalive().unwrap());
        stream.set_keepalive(false).unwrap();
        assert!(!stream.keepalive().unwrap());
        stream.set_linger(None).unwrap();
        assert_eq!(stream.linger().unwrap(), None);
        stream.set_recv_buffer_size(16 * 1024).unwrap();
        assert!(stream.recv_buffer_size().unwrap() >= 16 * 1024);
        stream.write_all(b"opt").unwrap();
        assert_eq!(&server.join().unwrap(), b"opt");
    });
}

#[test]
fn tcp_socket_connect_reports_refusal_and_works_from_async_tasks() {
    fiberloop::block_on(async {
        let closed: SocketAddr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = TcpSocket::new_v4()
            .unwrap()
            .connect_async(closed)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpSocket::new_v4()
            .unwrap()
            .connect_async(addr)
            .await
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), addr);
        stream.set_keepalive(true).unwrap();
        assert!(stream.keepalive().unwrap());
        assert!(!stream.nodelay().unwrap());
    });
}

#[test]
fn reuseport_lets_two_listeners_share_a_port_and_plain_bind_does_not() {
    let a = TcpListener::bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = a.local_addr().unwrap();
    let b = TcpListener::bind_reuseport(addr).unwrap();
    assert_eq!(b.local_addr().unwrap(), addr);
    let err = TcpListener::bind(addr).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}

#[test]
fn udp_broadcast_and_multicast_options_on_both_faces() {
    fiberloop::block_on(async {
        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        udp.set_broadcast(true).unwrap();
        assert!(udp.broadcast().unwrap());
        let group = Ipv4Addr::new(239, 255, 42, 99);
        match udp.join_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED) {
            Ok(()) => {
                udp.set_multicast_loop_v4(true).unwrap();
                udp.set_multicast_ttl_v4(1).unwrap();
                udp.leave_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED)
                    .unwrap();
            }
            // A host with no multicast route (some containers) says so.
            Err(e) => assert!(e.raw_os_error().is_some(), "{e}"),
        }
        let udp = async_net::UdpSocket::from(udp);
        udp.set_broadcast(false).unwrap();
        assert!(!udp.broadcast().unwrap());
        if udp
            .join_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED)
            .is_ok()
        {
            udp.leave_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED)
                .unwrap();
        }
        let v6 = async_net::UdpSocket::bind("[::1]:0").await;
        if let Ok(v6) = v6 {
            let group6 = "ff02::1:ff00:42".parse().unwrap();
            if v6.join_multicast_v6(&group6, 0).is_ok() {
                v6.leave_multicast_v6(&group6, 0).unwrap();
            }
        }
    });
}
