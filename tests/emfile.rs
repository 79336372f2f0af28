//! accept under descriptor exhaustion: the error is returned and a retry loop
//! cannot spin the CPU.

mod util;

use std::time::{Duration, Instant};

use fiberloop::net::TcpListener;

fn highest_open_fd() -> i32 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .max()
        .unwrap()
}

#[test]
fn accept_out_of_descriptors_returns_emfile_and_backs_off() {
    if !util::in_child() {
        let out = util::run_in_child("accept_out_of_descriptors_returns_emfile_and_backs_off");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("EMFILE-OK"), "{stdout}");
        return;
    }
    let event_loop = fiberloop::EventLoop::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Connections waiting in the backlog; they hold client-side fds already.
    let _clients: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let (errors, accepted_after) = event_loop.run_until_complete(move || {
        // From here on no descriptor can be created.
        let original = util::fd_soft_limit();
        util::set_fd_soft_limit(highest_open_fd() as u64 + 1);
        // Fill any free numbers below the limit, so none is left at all.
        let fillers: Vec<std::fs::File> =
            std::iter::from_fn(|| std::fs::File::open("/dev/null").ok()).collect();
        // A naive server loop that retries at once on every error.
        let start = Instant::now();
        let mut errors = 0;
        while start.elapsed() < Duration::from_millis(300) {
            match listener.accept() {
                Ok(_) => panic!("accept cannot succeed without descriptors"),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                    errors += 1;
                }
            }
        }
        util::set_fd_soft_limit(original);
        drop(fillers);
        // Descriptors are back: the pending connection is accepted.
        let accepted = listener.accept().is_ok();
        (errors, accepted)
    });
    // Without a back-off this loop would make millions of attempts in 300 ms.
    assert!(
        (2..=20).contains(&errors),
        "accept attempts in 300 ms: {errors}"
    );
    assert!(accepted_after);
    println!("EMFILE-OK after {errors} attempts");
}
