//! No write path raises `SIGPIPE`, even in a program that keeps the
//! signal's default action (which kills the process): every write to a
//! peer that has gone returns an error instead.

mod util;

use std::io::{IoSlice, Write};

fn is_gone(result: std::io::Result<usize>) -> bool {
    result.is_err_and(|e| util::peer_gone(&e))
}

/// Writes to `w` until the peer's departure shows (the first write after a
/// close may still be accepted by the kernel).
fn keeps_failing(mut write: impl FnMut() -> std::io::Result<usize>) -> bool {
    (0..100).any(|_| is_gone(write()))
}

#[test]
fn writes_to_a_gone_peer_fail_instead_of_killing_the_process() {
    if !util::in_child() {
        let (stdout, _) =
            util::run_in_child_ok("writes_to_a_gone_peer_fail_instead_of_killing_the_process");
        assert!(stdout.contains("ALL WRITES FAILED CLEANLY"), "{stdout}");
        return;
    }
    // SAFETY: restoring the default action of SIGPIPE, as a C host would have it.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    fiberloop::run(|| {
        let chunk = [7u8; 4096];
        let vectored = [IoSlice::new(&chunk), IoSlice::new(&chunk)];

        // TCP, both write paths.
        let listener = fiberloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tcp = fiberloop::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        drop(listener.accept().unwrap());
        assert!(keeps_failing(|| tcp.write(&chunk)), "tcp write");
        assert!(
            keeps_failing(|| tcp.write_vectored(&vectored)),
            "tcp write_vectored"
        );

        // Unix streams, both faces.
        let (mut unix, peer) = fiberloop::net::UnixStream::pair().unwrap();
        drop(peer);
        assert!(keeps_failing(|| unix.write(&chunk)), "unix write");
        assert!(
            keeps_failing(|| unix.write_vectored(&vectored)),
            "unix write_vectored"
        );
        let (unix, peer) = fiberloop::async_net::UnixStream::pair().unwrap();
        drop(peer);
        let async_write = fiberloop::wait(async {
            use futures_lite::AsyncWriteExt;
            let mut unix = &unix;
            let plain = unix.write(&chunk).await;
            let vectored = unix.write_vectored(&vectored).await;
            is_gone(plain) && is_gone(vectored)
        });
        assert!(async_write.unwrap(), "async unix writes");

        // A transport over a gone peer reports it through connection_lost.
        let (a, b) = fiberloop::net::UnixStream::pair().unwrap();
        drop(b);
        struct Quiet;
        impl fiberloop::transport::Protocol for Quiet {
            fn data_received(&mut self, _: &[u8]) {}
        }
        let transport = fiberloop::transport::attach(a, Quiet).unwrap();
        for _ in 0..10 {
            let _ = transport.write(&chunk);
            fiberloop::yield_now();
        }

        // A child's stdin after the child has exited.
        let mut child = fiberloop::process::spawn(
            std::process::Command::new("true").stdin(std::process::Stdio::piped()),
        )
        .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        child.wait().unwrap();
        assert!(keeps_failing(|| stdin.write(&chunk)), "pipe write");
    });
    println!("ALL WRITES FAILED CLEANLY");
}
