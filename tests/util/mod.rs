//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Set in a child process started by [`run_in_child`].
pub const CHILD_ENV: &str = "FIBERLOOP_TEST_CHILD";

/// True inside a child started by [`run_in_child`].
pub fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Re-runs the named test of the current test binary in a child process (for
/// behaviour that aborts the process or changes process limits), bounded by a
/// timeout, and returns its output.
pub fn run_in_child(test_name: &str) -> Output {
    run_in_child_with(test_name, &[])
}

/// [`run_in_child`] with these environment variables set in the child.
pub fn run_in_child_with(test_name: &str, envs: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start child test process");
    // Bounded: kill the child if it hangs.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait child").is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("child output")
}

/// [`run_in_child`], asserting that the child succeeded (its status and both
/// outputs in the message if not); returns its stdout and stderr.
pub fn run_in_child_ok(test_name: &str) -> (String, String) {
    run_in_child_ok_with(test_name, &[])
}

/// [`run_in_child_ok`] with these environment variables set in the child.
pub fn run_in_child_ok_with(test_name: &str, envs: &[(&str, &str)]) -> (String, String) {
    let out = run_in_child_with(test_name, envs);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "child failed ({:?}): {stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

/// Counts drops, to prove destructors ran.
#[derive(Clone, Default)]
pub struct DropCounter(pub Arc<AtomicUsize>);

impl DropCounter {
    pub fn token(&self) -> DropToken {
        DropToken(self.0.clone())
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Increments its counter when dropped.
pub struct DropToken(Arc<AtomicUsize>);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`).
pub fn fd_soft_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit.rlim_cur
}

/// Sets the soft limit on open descriptors, capped at the hard limit.
pub fn set_fd_soft_limit(n: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = n.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// Makes closing `socket` send a reset instead of a FIN (`SO_LINGER` 0).
pub fn reset_on_close(socket: &impl std::os::fd::AsRawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
}

/// True for the errors a write to a peer that has gone reports.
pub fn peer_gone(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
    )
}

/// Holds the calling thread for `duration` with a CPU-bound spin: a stall
/// of the loop (as a blocking call would be without the `hook` feature) that
/// stays a stall with the feature on, where `std::thread::sleep` in a fiber
/// parks only the fiber.
pub fn hold_thread(duration: Duration) {
    let end = std::time::Instant::now() + duration;
    while std::time::Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// A fiber that counts 5 ms ticks into `count` until `stop` is set: a probe
/// for "the loop ran other fibers meanwhile" (read `count` before and after
/// a call; a call that held the loop's thread leaves it unchanged).
pub fn spawn_ticker(
    count: std::rc::Rc<std::cell::Cell<usize>>,
    stop: std::rc::Rc<std::cell::Cell<bool>>,
) -> fiberloop::JoinHandle<()> {
    fiberloop::spawn(move || {
        while !stop.get() {
            fiberloop::sleep(Duration::from_millis(5));
            count.set(count.get() + 1);
        }
    })
}
