//! Unix-domain sockets: streams through a listener, pairs, datagrams, and the
//! errors std gives for bad paths.

use std::io::{ErrorKind, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use fiberloop::net::{UnixDatagram, UnixListener, UnixStream};

/// A socket path unique to this test and process, removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> TempPath {
        let path =
            std::env::temp_dir().join(format!("fiberloop-{}-{name}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_listener_serves_many_concurrent_clients() {
    let path = TempPath::new("echo");
    let p = path.0.clone();
    fiberloop::run(move || {
        let listener = UnixListener::bind(&p).unwrap();
        let server = fiberloop::spawn(move || {
            for stream in listener.incoming().take(20) {
                let mut stream = stream.unwrap();
                fiberloop::spawn(move || {
                    let mut buf = [0; 64];
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        stream.write_all(&buf[..n]).unwrap();
                    }
                });
            }
        });
        let clients: Vec<_> = (0..20u8)
            .map(|i| {
                let p = p.clone();
                fiberloop::spawn(move || {
                    let mut s = UnixStream::connect(&p).unwrap();
                    s.write_all(&[i; 10]).unwrap();
                    let mut back = [0; 10];
                    s.read_exact(&mut back).unwrap();
                    back == [i; 10]
                })
            })
            .collect();
        assert!(clients.into_iter().all(|c| c.join().unwrap()));
        server.join().unwrap();
    });
}

#[test]
fn bad_paths_give_std_errors() {
    let path = TempPath::new("bad");
    fiberloop::run(move || {
        let err = UnixStream::connect(&path.0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let _listener = UnixListener::bind(&path.0).unwrap();
        assert_eq!(
            UnixListener::bind(&path.0).unwrap_err().kind(),
            ErrorKind::AddrInUse
        );
    });
}

#[test]
fn shutdown_wakes_a_blocked_reader_and_timeouts_fire() {
    fiberloop::run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let reader = fiberloop::spawn({
            let a = a.try_clone().unwrap();
            move || {
                let mut buf = [0; 8];
                (&a).read(&mut buf).unwrap()
            }
        });
        fiberloop::sleep(Duration::from_millis(5));
        a.shutdown(std::net::Shutdown::Read).unwrap();
        assert_eq!(reader.join().unwrap(), 0, "end of file after shutdown");

        b.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let err = (&b).read(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
    });
}

#[test]
fn datagrams_carry_their_sender() {
    let (pa, pb) = (TempPath::new("dga"), TempPath::new("dgb"));
    fiberloop::run(move || {
        let a = UnixDatagram::bind(&pa.0).unwrap();
        let b = UnixDatagram::bind(&pb.0).unwrap();
        let receiver = fiberloop::spawn(move || {
            let mut buf = [0; 32];
            let (n, from) = b.recv_from(&mut buf).unwrap();
            (buf[..n].to_vec(), from.as_pathname().map(PathBuf::from))
        });
        a.send_to(b"hi there", &pb.0).unwrap();
        let (data, from) = receiver.join().unwrap();
        assert_eq!(data, b"hi there");
        assert_eq!(from.as_deref(), Some(pa.0.as_path()));
    });
}

#[test]
fn the_async_face_serves_streams_and_datagrams() {
    use fiberloop::async_net;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    let path = TempPath::new("async");
    let p = path.0.clone();
    fiberloop::block_on(async move {
        let listener = async_net::UnixListener::bind(&p).unwrap();
        let server = fiberloop::task::spawn(async move {
            for _ in 0..5 {
                let (mut stream, _) = listener.accept().await.unwrap();
                fiberloop::task::spawn(async move {
                    let mut buf = Vec::new();
                    stream.read_to_end(&mut buf).await.unwrap();
                    buf.reverse();
                    stream.write_all(&buf).await.unwrap();
                })
                .detach();
            }
        });
        let clients: Vec<_> = (0..5u8)
            .map(|i| {
                let p = p.clone();
                fiberloop::task::spawn(async move {
                    let mut stream = async_net::UnixStream::connect(&p).await.unwrap();
                    stream.write_all(&[i, i + 1, i + 2]).await.unwrap();
                    stream.close().await.unwrap(); // shuts down the write half
                    let mut back = Vec::new();
                    stream.read_to_end(&mut back).await.unwrap();
                    back
                })
            })
            .collect();
        for (i, client) in clients.into_iter().enumerate() {
            let i = i as u8;
            assert_eq!(client.await.unwrap(), [i + 2, i + 1, i]);
        }
        server.await.unwrap();

        let err = async_net::UnixStream::connect("/nonexistent/fiberloop.sock")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);

        let (a, b) = async_net::UnixDatagram::pair().unwrap();
        let reader = fiberloop::task::spawn(async move {
            let mut buf = [0; 16];
            let n = b.recv(&mut buf).await.unwrap();
            buf[..n].to_vec()
        });
        assert_eq!(a.send(b"one datagram").await.unwrap(), 12);
        assert_eq!(reader.await.unwrap(), b"one datagram");
    });
}

#[test]
fn a_stream_changes_faces() {
    fiberloop::run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let a = fiberloop::async_net::UnixStream::from(a);
        let task = fiberloop::task::spawn(async move {
            use futures_lite::AsyncWriteExt;
            let mut a = a;
            a.write_all(b"from a task").await.unwrap();
            UnixStream::from(a) // and back to the fiber face
        });
        let mut b = b;
        let mut buf = [0; 11];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"from a task");
        let mut a = fiberloop::wait(task).unwrap().unwrap(); // a fiber awaits a task
        a.write_all(b"!").unwrap();
        b.read_exact(&mut buf[..1]).unwrap();
        assert_eq!(&buf[..1], b"!");
    });
}
