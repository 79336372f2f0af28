//! The `hook` feature keeps each descriptor's documented semantics: a user
//! who asked for non-blocking gets `WouldBlock`, `set_read_timeout` gives
//! `WouldBlock` after the timeout, a close wakes a fiber parked on the
//! descriptor, `connect_timeout` works, and a descriptor used by a fiber
//! still blocks a plain thread.
#![cfg(feature = "hook")]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// The fd's O_NONBLOCK as the kernel has it (F_GETFL through the hook hides
/// ours, so ask through /proc).
fn kernel_nonblocking(fd: i32) -> bool {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
        .unwrap();
    flags & libc::O_NONBLOCK as u32 != 0
}

#[test]
fn a_socket_the_user_made_non_blocking_says_would_block() {
    fiberloop::run(|| {
        let (mut client, _server) = pair();
        client.set_nonblocking(true).unwrap();
        assert!(!fiberloop::hook::parks_fibers(client.as_raw_fd()));
        let err = client.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
    });
}

#[test]
fn set_read_timeout_gives_would_block_and_lets_others_run() {
    fiberloop::run(|| {
        let (mut client, _server) = pair();
        client
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        // The kernel keeps it in its own ticks (52 ms here), and reports that.
        assert!(client.read_timeout().unwrap() >= Some(Duration::from_millis(50)));
        let ran = fiberloop::spawn(|| fiberloop::sleep(Duration::from_millis(5)));
        let started = Instant::now();
        let err = client.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(ran.is_finished(), "the other fiber ran during the wait");
    });
}

#[test]
fn get_fl_reports_what_the_user_set_while_the_kernel_is_non_blocking() {
    fiberloop::run(|| {
        let (mut client, mut server) = pair();
        let fd = client.as_raw_fd();
        let writer = fiberloop::spawn(move || {
            fiberloop::sleep(Duration::from_millis(10));
            server.write_all(b"x").unwrap();
            server
        });
        let mut byte = [0u8; 1];
        client.read_exact(&mut byte).unwrap(); // parks: the hook set O_NONBLOCK
        assert!(kernel_nonblocking(fd));
        // SAFETY: F_GETFL on an open descriptor.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        assert_eq!(flags & libc::O_NONBLOCK, 0, "the user never asked for it");
        assert!(fiberloop::hook::parks_fibers(fd));
        drop(writer.join().unwrap());
    });
}

#[test]
fn closing_a_descriptor_wakes_the_fiber_parked_on_it_with_an_error() {
    fiberloop::run(|| {
        let (client, _server) = pair();
        let fd = client.as_raw_fd();
        let reader = fiberloop::spawn(move || {
            let mut copy = unsafe_clone(fd);
            let result = copy.read(&mut [0u8; 8]);
            std::mem::forget(copy); // the other fiber closed the number
            result
        });
        fiberloop::sleep(Duration::from_millis(10));
        drop(client); // close(2) while the reader is parked on the same fd
        let err = reader.join().unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
    });
}

/// A second `TcpStream` on the same descriptor number (not a dup).
fn unsafe_clone(fd: i32) -> TcpStream {
    use std::os::fd::FromRawFd;
    // SAFETY: the test keeps the original open until the reader parked, and
    // forgets this copy instead of closing the number twice.
    unsafe { TcpStream::from_raw_fd(fd) }
}

#[test]
fn connect_timeout_parks_the_fiber_and_connects() {
    fiberloop::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = fiberloop::spawn(move || listener.accept().map(|(s, _)| s));
        let mut client = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        let mut server = acceptor.join().unwrap().unwrap();
        client.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
    });
}

#[test]
fn a_descriptor_a_fiber_used_still_blocks_a_plain_thread() {
    let (client, mut server) = fiberloop::run(|| {
        let (mut client, mut server) = pair();
        let echo = fiberloop::spawn(move || {
            fiberloop::sleep(Duration::from_millis(5));
            server.write_all(b"a").unwrap();
            server
        });
        client.read_exact(&mut [0u8; 1]).unwrap(); // the hook made it non-blocking
        (client, echo.join().unwrap())
    });
    // Back on a plain thread: a read must block until data comes, as std
    // documents, not fail with WouldBlock.
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        server.write_all(b"b").unwrap();
        server
    });
    let mut client = client;
    let mut byte = [0u8; 1];
    client.read_exact(&mut byte).unwrap();
    assert_eq!(&byte, b"b");
    drop(writer.join().unwrap());
}

#[test]
fn stdin_is_never_made_non_blocking() {
    fiberloop::run(|| {
        assert!(!fiberloop::hook::parks_fibers(0));
        let before = kernel_nonblocking(0);
        let mut pfd = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; a short wait parks only this fiber.
        unsafe { libc::poll(&mut pfd, 1, 1) };
        assert_eq!(kernel_nonblocking(0), before);
    });
}

#[test]
fn a_fiber_parked_in_a_std_read_can_be_cancelled() {
    fiberloop::run(|| {
        let (client, _server) = pair();
        let reader = fiberloop::spawn(move || {
            let mut client = client;
            let result = client.read(&mut [0u8; 8]);
            // The hooked read cannot unwind through libc: it fails with
            // ECANCELED, and the fiber's next park unwinds it.
            assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
            fiberloop::sleep(Duration::from_secs(3600));
            unreachable!("a cancelled fiber does not get past its next park");
        });
        fiberloop::sleep(Duration::from_millis(10));
        reader.cancel();
        assert!(reader.join().unwrap_err().is_cancelled());
    });
}

#[test]
fn a_refused_std_connect_in_a_fiber_says_connection_refused() {
    fiberloop::run(|| {
        // A port that was just free: nothing listens there.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    });
}
