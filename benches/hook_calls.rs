//! The cost of the `hook` feature outside a fiber, in instructions: 10,000
//! `send` + `recv` pairs on a Unix socket pair from a plain thread. Build it
//! with and without `--features hook` and count with callgrind
//! (docs/hook.md has the commands); wall time cannot show a few
//! instructions next to a system call on this machine.

use std::hint::black_box;

const PAIRS: usize = 10_000;

/// The measured loop (callgrind's `--toggle-collect` names it).
#[inline(never)]
fn send_recv_pairs(fds: [libc::c_int; 2], pairs: usize) -> usize {
    let mut got = 0;
    let mut byte = [0u8; 1];
    for _ in 0..pairs {
        // SAFETY: both descriptors are open; the buffers are valid for 1 byte.
        unsafe {
            libc::send(fds[0], b"x".as_ptr().cast(), 1, libc::MSG_DONTWAIT);
            let n = libc::recv(fds[1], byte.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT);
            got += usize::try_from(n).unwrap_or(0);
        }
    }
    got
}

fn main() {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    let made = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
    assert_eq!(made, 0, "socketpair: {}", std::io::Error::last_os_error());
    // The pair was made through the hooked `socketpair`: with the feature,
    // these are descriptors a fiber would park on, so each call below takes
    // the hooks' "outside a fiber" test, not a shortcut for untracked ones.
    #[cfg(feature = "hook")]
    assert!(fiberloop::hook::parks_fibers(fds[0]));
    #[cfg(not(feature = "hook"))]
    let _ = fiberloop::DEFAULT_STACK_SIZE; // the same binary, hooks aside
    let got = send_recv_pairs(black_box(fds), black_box(PAIRS));
    assert_eq!(got, PAIRS);
    println!(
        "{PAIRS} send + recv pairs outside a fiber (hook feature {})",
        if cfg!(feature = "hook") { "on" } else { "off" }
    );
}
