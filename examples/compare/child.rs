//! Child processes: each server and each skynet run lives in its own process,
//! so its CPU time and RSS belong to one model alone. The parent talks to a
//! child over its stdin and stdout, one line per message.

use std::io::{self, BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::model::Model;
use crate::server::{self, Proto};

/// A running child of this program.
pub struct Child {
    process: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// The first lines the child wrote to stderr (a panic message, say).
    errors: Arc<Mutex<Vec<String>>>,
}

/// A server's counters at one moment.
pub struct Stats {
    /// CPU time of the whole server process, all threads, in nanoseconds.
    pub cpu_ns: u64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Connections whose handler is running.
    pub active: usize,
}

impl Child {
    /// Starts this program with `--child ARGS...`.
    pub fn spawn(args: &[&str]) -> io::Result<Child> {
        let mut process = Command::new(std::env::current_exe()?)
            .arg("--child")
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // A dying peer may print thousands of panics: keep the first few.
        let stderr = process.stderr.take().expect("piped stderr");
        let errors = Arc::new(Mutex::new(Vec::new()));
        let kept = errors.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // The message, not the "thread '..' panicked at" or "note:" lines.
                let mut kept = kept.lock().unwrap();
                let noise = line.starts_with("thread '")
                    || line.starts_with("note:")
                    || line.trim().is_empty();
                if kept.is_empty() && !noise {
                    kept.push(line);
                }
            }
        });
        let stdout = process.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Child {
            stdin: process.stdin.take(),
            process,
            lines,
            errors,
        })
    }

    /// The child's next line of output, split into words after `tag`.
    pub fn expect(&mut self, tag: &str, timeout: Duration) -> io::Result<Vec<String>> {
        let line = match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no '{tag}' from the child in {timeout:?}"),
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.process.wait()?;
                let how = match status.code() {
                    Some(101) => "panicked".to_owned(),
                    _ => format!("failed ({status})"),
                };
                std::thread::sleep(Duration::from_millis(50)); // let stderr drain
                let said = self.errors.lock().unwrap().join(" / ");
                let said = if said.is_empty() {
                    "it wrote nothing to stderr".to_owned()
                } else {
                    said
                };
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the child {how} before '{tag}': {said}"),
                ));
            }
        };
        let mut words = line.split_whitespace().map(str::to_owned);
        if words.next().as_deref() != Some(tag) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected '{tag}' from the child, got {line:?}"),
            ));
        }
        Ok(words.collect())
    }

    /// Asks a server child for its counters.
    pub fn stats(&mut self) -> io::Result<Stats> {
        let stdin = self
            .stdin
            .as_mut()
            .expect("stdin is open while the child lives");
        stdin.write_all(b"stats\n")?;
        stdin.flush()?;
        let words = self.expect("stats", Duration::from_secs(10))?;
        let num = |i: usize| -> io::Result<u64> {
            words
                .get(i)
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stats line"))
        };
        Ok(Stats {
            cpu_ns: num(0)?,
            rss_kib: num(1)?,
            active: num(2)? as usize,
        })
    }
}

impl Child {
    /// Waits until a server child's handlers have taken `n` connections.
    pub fn wait_for_active(&mut self, n: usize) -> io::Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.stats()?.active < n {
            if std::time::Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the server did not take {n} connections in 30 s"),
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        drop(self.stdin.take()); // a server child exits at EOF on stdin
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Parses a number from a child's reply.
pub fn parse<T: std::str::FromStr>(words: &[String], i: usize) -> io::Result<T> {
    words.get(i).and_then(|w| w.parse().ok()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed reply {words:?}"),
        )
    })
}

/// The child's side: `--child serve MODEL PROTO` or `--child skynet MODEL LEAVES`.
pub fn main(args: &[String]) -> io::Result<()> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad child arguments {args:?}"),
        )
    };
    let model = args.get(1).and_then(|m| Model::parse(m)).ok_or_else(bad)?;
    match args.first().map(String::as_str) {
        Some("serve") => {
            let proto = args.get(2).and_then(|p| Proto::parse(p)).ok_or_else(bad)?;
            pin_to_cpu(0);
            let port = server::start(model, proto)?;
            println!("port {port}");
            for line in io::stdin().lock().lines() {
                if line? == "stats" {
                    let active = server::ACTIVE.load(std::sync::atomic::Ordering::Relaxed);
                    println!(
                        "stats {} {} {active}",
                        process_cpu_ns(),
                        status_kib("VmRSS:")
                    );
                }
            }
            Ok(()) // the parent closed our stdin: done
        }
        Some("skynet") => {
            let leaves: u64 = args.get(2).and_then(|n| n.parse().ok()).ok_or_else(bad)?;
            let base = status_kib("VmRSS:");
            let (sum, elapsed) = crate::skynet::run(model, leaves);
            println!(
                "skynet {sum} {} {base} {}",
                elapsed.as_nanos(),
                status_kib("VmHWM:")
            );
            Ok(())
        }
        _ => Err(bad()),
    }
}

/// CPU time of this process (all threads, user + system), in nanoseconds.
fn process_cpu_ns() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full rusage into the buffer we own; on failure
    // the buffer stays zeroed, which is a valid rusage.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

/// A `kB` field of `/proc/self/status` (0 if unreadable).
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Pins this process (and the threads it will start) to one CPU, if the
/// machine has more than one; the load generator takes another.
pub fn pin_to_cpu(cpu: usize) {
    if cpus() < 2 {
        return;
    }
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write within it,
    // and sched_setaffinity reads it. Failure leaves the process unpinned.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
