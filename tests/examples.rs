//! The examples that run unattended, run as a user would (`cargo run --example`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn example(name: &str) -> Command {
    // Cargo builds examples for `cargo test`; they sit beside the test binary.
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.push("examples");
    path.push(name);
    Command::new(path)
}

fn run_bounded(mut cmd: Command) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start example");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "example did not finish in time"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn hello_interleaves_three_fibers() {
    let out = run_bounded(example("hello"));
    let steps: Vec<&str> = out.lines().filter(|l| l.contains(" step ")).collect();
    assert_eq!(steps.len(), 9, "{out}");
    // Interleaved: cy's first step comes before bob's first step, not after all of ann's.
    let first_names: Vec<&str> = steps
        .iter()
        .take(3)
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(first_names, ["cy", "ann", "bob"], "{out}");
    assert!(out.contains("the fibers slept 195 ms in all"), "{out}");
}

#[test]
fn timers_stops_the_loop_and_skips_the_cancelled_callback() {
    let out = run_bounded(example("timers"));
    assert!(out.contains("tick") && out.contains("tock"), "{out}");
    assert!(!out.contains("you will not see this"), "{out}");
    assert!(out.contains("stopped after"), "{out}");
}

fn echo_client_verifies(server_example: &str) {
    echo_client_verifies_with(server_example, &[]);
}

fn echo_client_verifies_with(server_example: &str, options: &[&str]) {
    let mut server = example(server_example)
        .args(options)
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the echo server");
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first.trim().rsplit(' ').next().unwrap().to_string();
    assert!(first.contains("listening on 127.0.0.1:"), "{first}");
    let mut client = example("echo_client");
    client.args([addr.as_str(), "50", "100", "512"]);
    let out = run_bounded(client);
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        out.contains("50 connections × 100 round trips of 512 B"),
        "{out}"
    );
    assert!(out.contains(", 0 failed"), "{out}");
}

#[test]
fn echo_client_verifies_echo_server() {
    echo_client_verifies("echo_server");
}

#[test]
fn echo_client_verifies_echo_server_on_two_loops() {
    echo_client_verifies_with("echo_server", &["--loops", "2"]);
}

#[test]
fn echo_client_verifies_echo_server_async() {
    echo_client_verifies("echo_server_async");
}

#[test]
fn echo_client_verifies_echo_protocol() {
    echo_client_verifies("echo_protocol");
}

#[test]
fn mixed_runs_both_models_both_ways() {
    let out = run_bounded(example("mixed"));
    assert!(
        out.contains("fiber server, async clients: 20 replies, all correct"),
        "{out}"
    );
    assert!(
        out.contains("async server, fiber clients: 20 replies, all correct"),
        "{out}"
    );
    // The steps interleave, as cause and effect force them to: client i
    // sends before its handler reads, and that handler replies before
    // client i gets the reply.
    for part in out.split("replies, all correct").take(2) {
        let steps: Vec<&str> = part
            .lines()
            .filter(|l| l.starts_with("  ") && l.trim_start().starts_with(char::is_numeric))
            .collect();
        assert_eq!(steps.len(), 12, "{part}");
        let at = |who: &str, what: &str| {
            steps
                .iter()
                .position(|l| l.contains(who) && l.contains(what))
                .unwrap_or_else(|| panic!("no '{who}' '{what}' in {part}"))
        };
        for i in 0..3 {
            let (client, handler) = (format!("client {i} "), format!("handler {i} "));
            assert!(at(&client, "sent") < at(&handler, "read"), "{part}");
            assert!(at(&handler, "replying") < at(&client, "got"), "{part}");
        }
    }
}

#[test]
fn the_generator_chapter_examples_print_what_they_promise() {
    assert_eq!(
        run_bounded(example("gen_countdown")),
        "starting\n3\n2\n1\ndone\n"
    );
    let out = run_bounded(example("gen_averager"));
    assert!(
        out.contains("sent 30 -> average 20.0") && out.contains("sent 5 -> average 15.0"),
        "{out}"
    );
    assert!(
        out.contains("averager closed: its destructors ran"),
        "{out}"
    );
    let out = run_bounded(example("gen_pipeline"));
    assert!(out.ends_with("3 of 6 lines matched\n"), "{out}");
    // One item in flight: the sink has the first line before the source
    // reads the second.
    assert!(
        out.starts_with(
            "lines: read \"a fiber has a stack\"\n  grep: match, passed on\n    sink: line 1: a fiber has a stack\nlines: read \"a future has a state machine\"\n"
        ),
        "{out}"
    );
    let out = run_bounded(example("gen_delegation"));
    assert!(
        out.contains("girls: mean 40.5 kg (4 values)")
            && out.contains("boys: mean 42.0 kg (4 values)"),
        "{out}"
    );
    // Values go down to the averager and its running means come back up
    // through the delegating grouper; a throw goes down to it too.
    assert!(
        out.contains(
            "  caller:   send 40.9 to grouper\n  averager: got 40.9 (1 so far)\n  caller:   grouper yielded the running mean 40.90\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "  caller:   throw \"scale glitch\" into grouper\n  averager: caught the thrown error \"scale glitch\", skipped it\n  caller:   grouper yielded 39.90 again\n"
        ),
        "{out}"
    );
    let out = run_bounded(example("gen_scheduler"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"[task 1] main: spawning a child, a reader and a writer"),
        "{out}"
    );
    assert_eq!(
        lines.last(),
        Some(&"[task 1] main: child and reader exited, all done"),
        "{out}"
    );
    assert!(
        out.contains("[task 3] reader: got \"hello from task 4\""),
        "{out}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains("child: step")).count(),
        3,
        "{out}"
    );
    // With --trace, the runs in the scheduler trace's text form.
    let mut cmd = example("gen_scheduler");
    cmd.arg("--trace");
    let out = run_bounded(cmd);
    let runs: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.contains('→'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        runs[0][1..],
        ["#1", "spawned", "→", "syscall", "GetTid"],
        "{out}"
    );
    // main returns last; whether its join of the reader parked depends on
    // which of the child's last timer and the reader's wake came first.
    let last = runs.last().unwrap();
    assert_eq!((last[1], last[last.len() - 1]), ("#1", "return"), "{out}");
    let main_woken = runs.iter().any(|r| r[1..4] == ["#1", "woken", "by"]);
    assert!(main_woken, "a join woke main: {out}");
    let reader_woken = runs
        .iter()
        .any(|r| r[1] == "#3" && r.get(4) == Some(&"readable") && r.last() == Some(&"return"));
    assert!(reader_woken, "{out}");
    assert!(
        runs.iter().any(|r| r[1..4] == ["#2", "timer", "due"]),
        "{out}"
    );
}

#[test]
fn compare_runs_every_workload_in_every_model_and_writes_a_report() {
    let out_dir = std::env::temp_dir().join(format!("fiberloop-compare-{}", std::process::id()));
    let mut cmd = example("compare");
    cmd.args(["--smoke", "--out"]).arg(&out_dir);
    let out = run_bounded(cmd);
    for table in [
        "spawn_join",
        "yield",
        "ping_pong",
        "skynet",
        "echo 10×4 KiB",
        "idle",
        "deep",
    ] {
        assert!(
            out.contains(&format!("== {table}:")),
            "no {table} table in\n{out}"
        );
    }
    // Every server model answered correctly (a wrong reply is an error, not a row).
    let echo = out.split("== echo 10×64 B").nth(1).unwrap();
    for model in [
        "fibers", "async", "tokio-ct", "tokio-mt", "threads", "may", "mio",
    ] {
        let row = echo.lines().find(|l| l.starts_with(model)).unwrap();
        assert!(!row.contains("n/a"), "{row}");
    }
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(
        report.contains("## Targets") && report.contains("![skynet](skynet.svg)"),
        "{report}"
    );
    // The verdicts in the terminal too, with where they come from and the
    // range over the repetitions.
    let targets = out
        .split("== Targets")
        .nth(1)
        .expect("targets in the terminal");
    assert!(
        targets.contains("checked on this run's medians"),
        "{targets}"
    );
    let verdict = targets
        .lines()
        .find(|l| l.starts_with("- spawn + join, fibers / tokio-ct: "))
        .expect("the spawn + join verdict");
    assert!(
        verdict.contains("repetitions ") && verdict.contains("target ≤"),
        "{verdict}"
    );
    for target in ["target ≤ 0.35×", "target ≤ 0.4×", "target ≤ 10 ns"] {
        assert!(targets.contains(target), "{target} in {targets}");
    }
    // One unit per column: the spawn_join column is all ns or all µs.
    let spawn = out.split("== spawn_join").nth(1).unwrap();
    let rows: Vec<&str> = spawn
        .lines()
        .skip(2)
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.contains("n/a"))
        .collect();
    let in_us = rows.iter().filter(|r| r.contains(" µs")).count();
    assert!(in_us == 0 || in_us == rows.len(), "{spawn}");
    assert!(std::fs::read_to_string(out_dir.join("idle.svg"))
        .unwrap()
        .starts_with("<svg"));
    // The charts: which way is better, a whisker per bar, "n/a" for a model
    // without a figure, and a log axis where threads are 100× the rest.
    let chart = std::fs::read_to_string(out_dir.join("spawn_join.svg")).unwrap();
    assert!(chart.contains("lower is better"), "{chart}");
    // The spread of the medians, from the "vs fibers" column (the whiskers
    // widen it a little): far past 20× needs a log axis, well under it not.
    let ratios: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.split_whitespace().last()?.strip_suffix('×')?.parse().ok())
        .collect();
    let spread = ratios.iter().copied().fold(0.0, f64::max)
        / ratios.iter().copied().fold(f64::INFINITY, f64::min);
    if spread > 30.0 {
        assert!(chart.contains("log scale"), "{spread}: {chart}");
    } else if spread < 10.0 {
        assert!(!chart.contains("log scale"), "{spread}: {chart}");
    }
    assert!(chart.contains(">n/a: a servers-only model"), "{chart}");
    assert!(chart.matches("class=\"whisker\"").count() >= 5, "{chart}");
    for (file, says) in [
        ("echo_10_64_B.svg", "server CPU/trip, lower is better"),
        (
            "echo_10_64_B_round_trips_s.svg",
            "round trips/s, higher is better",
        ),
        ("echo_10_64_B_p99.svg", "p99, lower is better"),
    ] {
        let chart = std::fs::read_to_string(out_dir.join(file)).unwrap();
        assert!(chart.contains(says), "{file}: {chart}");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn compare_rejects_an_unknown_workload_with_usage() {
    let out = example("compare")
        .args(["--only", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown workload 'nope'") && err.contains("usage: compare"),
        "{err}"
    );
}

#[test]
fn subprocess_zen_prints_the_childs_lines_and_ticks_meanwhile() {
    let out = run_bounded(example("subprocess_zen"));
    assert!(out.contains("[tick"), "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.ends_with("the child exited with exit status: 0"),
        "{out}"
    );
    // Ticks interleave with the child's lines, not all before or after.
    let lines: Vec<&str> = out.lines().collect();
    let first_tick = lines.iter().position(|l| l.contains("[tick")).unwrap();
    let last_tick = lines.iter().rposition(|l| l.contains("[tick")).unwrap();
    assert!(
        lines[first_tick..last_tick]
            .iter()
            .any(|l| !l.contains("[tick")),
        "{out}"
    );
}

/// A server example running in the background, killed when dropped.
struct Running {
    child: std::process::Child,
    /// The rest of its standard output (until a test takes it).
    stdout: Option<BufReader<std::process::ChildStdout>>,
    /// The address from its first line ("... listening on [http://]ADDR").
    addr: String,
}

impl Running {
    fn start(name: &str, args: &[&str]) -> Running {
        let mut child = example(name)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server example");
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        assert!(first.contains("listening on "), "{first}");
        let addr = first.trim().rsplit(' ').next().unwrap();
        let addr = addr.trim_start_matches("http://").to_string();
        Running {
            child,
            stdout: Some(stdout),
            addr,
        }
    }

    /// The next line of its standard output.
    fn line(&mut self) -> String {
        let mut line = String::new();
        let stdout = self.stdout.as_mut().expect("stdout not taken");
        stdout.read_line(&mut line).unwrap();
        line
    }

    fn connect(&self) -> std::net::TcpStream {
        let stream = std::net::TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one HTTP response (head and `Content-Length` body) from `reader`:
/// its status, `Connection` header and body.
fn read_response(reader: &mut impl BufRead) -> (u16, String, String) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .unwrap_or_else(|| panic!("no status in {status_line:?}"))
        .parse()
        .unwrap();
    let (mut length, mut connection) = (0, String::new());
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(": ").unwrap();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap(),
            "connection" => connection = value.to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    std::io::Read::read_exact(reader, &mut body).unwrap();
    (status, connection, String::from_utf8(body).unwrap())
}

/// At EOF: the server closed the connection.
fn assert_closed(reader: &mut impl BufRead) {
    let mut rest = String::new();
    assert_eq!(reader.read_line(&mut rest).unwrap(), 0, "{rest}");
}

fn http_hello_behaves(args: &[&str]) {
    use std::io::Write;
    let server = Running::start("http_hello", args);

    // Keep-alive: two requests, then a pipelined pair, on one connection.
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut reader),
        (200, "keep-alive".into(), "Hello, world!\n".into())
    );
    stream
        .write_all(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader).0, 200);
    assert_eq!(read_response(&mut reader).0, 200);
    // `Connection: close` is honoured.
    stream
        .write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader).1, "close");
    assert_closed(&mut reader);

    // An oversized head: 431, that connection closed, the server serves on.
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let huge = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    let _ = stream.write_all(huge.as_bytes()); // the server may close before reading it all
    assert_eq!(read_response(&mut reader).0, 431);
    assert_closed(&mut reader);

    // Garbage: 400. Another method: 405 on a live connection.
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream
        .write_all(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        .unwrap();
    assert_eq!(read_response(&mut reader).0, 405);
    stream.write_all(b"\x01\x02 nonsense\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut reader).0, 400);
    assert_closed(&mut reader);

    // HTTP/1.0 without keep-alive: one answer, then closed.
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut reader).1, "close");
    assert_closed(&mut reader);

    // Slow clients: silent mid-request gets 408, silent between requests is
    // closed; either way the server serves on.
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream.write_all(b"GET / HTTP/1.1\r\nHost:").unwrap();
    assert_eq!(read_response(&mut reader).0, 408);
    assert_closed(&mut reader);
    let stream = server.connect();
    assert_closed(&mut BufReader::new(stream));
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut reader).0, 200);
}

/// Abusive clients are cut off, in either model: one that pipelines
/// requests and never reads, one that trickles its head a byte at a time
/// (slowloris), and one that sends conflicting `Content-Length` headers.
fn http_hello_cuts_off_abusive_clients(args: &[&str]) {
    use std::io::{Read, Write};
    let server = Running::start("http_hello", args);

    // Never reads: the server's write times out and it closes; the client's
    // writes then fail instead of blocking (bounded by its own timeout).
    let mut stream = server.connect();
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let requests = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    let outcome = (0..10_000)
        .map(|_| stream.write_all(&requests))
        .find(Result::is_err)
        .expect("the server cut the client off")
        .unwrap_err();
    assert!(
        matches!(
            outcome.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "cut off, not left hanging: {outcome:?}"
    );

    // Slowloris: a header byte every 100 ms never completes the head; the
    // whole request gets the idle time (300 ms), not each read.
    let mut stream = server.connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let trickler = std::thread::spawn(move || {
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nX-Slow: ");
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(100));
            if stream.write_all(b"a").is_err() {
                return true; // the server is gone
            }
        }
        false
    });
    let (status, _, _) = read_response(&mut reader);
    assert_eq!(status, 408);
    assert!(trickler.join().unwrap(), "the connection was closed");

    // Conflicting Content-Length: 400 (RFC 9112 §6.3); equal repeats are fine.
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab")
        .unwrap();
    assert_eq!(read_response(&mut reader).0, 200);
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
        )
        .unwrap();
    assert_eq!(read_response(&mut reader).0, 400);
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
}

#[test]
fn http_hello_cuts_off_abusive_clients_with_fibers() {
    http_hello_cuts_off_abusive_clients(&["--idle-ms", "300", "127.0.0.1:0"]);
}

#[test]
fn http_hello_cuts_off_abusive_clients_with_async() {
    http_hello_cuts_off_abusive_clients(&["--async", "--idle-ms", "300", "127.0.0.1:0"]);
}

#[test]
fn http_hello_serves_keep_alive_and_rejects_bad_requests_with_fibers() {
    http_hello_behaves(&["--idle-ms", "300", "127.0.0.1:0"]);
}

#[test]
fn http_hello_serves_keep_alive_and_rejects_bad_requests_on_two_loops() {
    http_hello_behaves(&["--loops", "2", "--idle-ms", "300", "127.0.0.1:0"]);
    http_hello_behaves(&["--async", "--loops", "2", "--idle-ms", "300", "127.0.0.1:0"]);
}

#[test]
fn http_hello_serves_keep_alive_and_rejects_bad_requests_with_async() {
    http_hello_behaves(&["--async", "--idle-ms", "300", "127.0.0.1:0"]);
}

#[test]
fn gateway_relays_and_answers_502_and_504_for_bad_backends() {
    use std::io::Write;
    let server = Running::start("gateway", &["127.0.0.1:0", "--timeout-ms", "300"]);
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut ask = |request: &str| {
        stream.write_all(request.as_bytes()).unwrap();
        read_response(&mut reader)
    };
    // Relayed, on one keep-alive connection.
    let (status, connection, body) = ask("GET /users/42 HTTP/1.1\r\nHost: g\r\n\r\n");
    assert_eq!((status, connection.as_str()), (200, "keep-alive"), "{body}");
    assert!(
        body.contains("\"service\":\"users\"") && body.contains("\"path\":\"/users/42\""),
        "{body}"
    );
    let (status, _, body) =
        ask("POST /orders HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"method\":\"POST\""), "{body}");
    // A backend that is down, one that is too slow, and no backend at all.
    let (status, _, body) = ask("GET /billing/1 HTTP/1.1\r\nHost: g\r\n\r\n");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("billing is unavailable"), "{body}");
    let (status, _, body) = ask("GET /reports/daily HTTP/1.1\r\nHost: g\r\n\r\n");
    assert_eq!(status, 504, "{body}");
    let (status, _, _) = ask("GET /nowhere HTTP/1.1\r\nHost: g\r\n\r\n");
    assert_eq!(status, 404);
    // And it still serves after all that.
    let (status, _, body) = ask("GET /users/1 HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    assert_closed(&mut reader);
}

#[test]
fn chat_joins_broadcasts_and_leaves() {
    use std::io::Write;
    let server = Running::start("chat", &["127.0.0.1:0"]);
    struct Client {
        stream: std::net::TcpStream,
        reader: BufReader<std::net::TcpStream>,
    }
    impl Client {
        fn line(&mut self) -> String {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            line.trim_end().to_string()
        }
        fn say(&mut self, text: &str) {
            writeln!(self.stream, "{text}").unwrap();
        }
    }
    let connect = || {
        let stream = server.connect();
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        };
        assert_eq!(client.line(), "welcome to fiberloop chat! your name?");
        client
    };
    let mut alice = connect();
    alice.say("alice");
    assert!(alice.line().starts_with("hello alice, 1 online"));
    let mut bob = connect();
    bob.say("no spaces please");
    assert!(bob.line().starts_with("* names are 1-20 letters"));
    bob.say("bob");
    assert!(bob.line().starts_with("hello bob, 2 online"));
    assert_eq!(alice.line(), "* bob joined");
    bob.say("hi all");
    assert_eq!(alice.line(), "bob: hi all");
    alice.say("hi bob\r"); // telnet's line ending
    assert_eq!(bob.line(), "alice: hi bob");
    let mut carol = connect();
    carol.say("alice");
    assert_eq!(carol.line(), "* name taken, try another:");
    alice.say("/who");
    assert_eq!(alice.line(), "* online: alice, bob");
    bob.say("/quit");
    assert_eq!(bob.line(), "", "bob's connection is closed");
    assert_eq!(alice.line(), "* bob left");
    carol.say("carol");
    assert!(carol.line().starts_with("hello carol, 2 online"));
    assert_eq!(alice.line(), "* carol joined");
    carol.say(&"x".repeat(5000));
    assert_eq!(carol.line(), "* line too long, bye");
    assert_eq!(carol.line(), "", "carol's connection is closed");
    assert_eq!(alice.line(), "* carol left");
}

/// Sends up to `lines` 1 KB chat lines from `stream` on a thread, until
/// `stop` is set or a write fails; the thread returns the stream.
fn chat_talker(
    mut stream: std::net::TcpStream,
    lines: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<std::net::TcpStream> {
    use std::io::Write;
    std::thread::spawn(move || {
        let line = format!("{}\n", "y".repeat(999));
        for _ in 0..lines {
            if stop.load(std::sync::atomic::Ordering::Relaxed)
                || stream.write_all(line.as_bytes()).is_err()
            {
                break;
            }
        }
        stream
    })
}

/// Connects to the chat server and joins as `name`, reading the greeting.
fn chat_join(
    server: &Running,
    name: &str,
) -> (std::net::TcpStream, BufReader<std::net::TcpStream>) {
    use std::io::Write;
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    writeln!(stream, "{name}").unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap(); // welcome
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("hello"), "{line}");
    (stream, reader)
}

#[test]
fn chat_drops_a_client_that_stops_reading_and_serves_on() {
    use std::io::Write;
    let server = Running::start("chat", &["127.0.0.1:0"]);
    let join = |name: &str| chat_join(&server, name);
    let (_dave, _dave_reader) = join("dave"); // never reads again
    let (alice, mut alice_reader) = join("alice");
    // Alice talks until the server gives up on dave; bounded at 100 MB.
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let talker = chat_talker(alice, 100_000, dropped.clone());
    let mut line = String::new();
    alice_reader.read_line(&mut line).unwrap();
    dropped.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(line, "* dave was too slow and was dropped\n");
    let mut alice = talker.join().unwrap();
    writeln!(alice, "/who").unwrap();
    line.clear();
    alice_reader.read_line(&mut line).unwrap();
    assert_eq!(line, "* online: alice\n");
}

/// A thousand members who never read, one talker: they are all dropped
/// (once the broadcast recursed per dropped member and overflowed the
/// server's stack), and the room serves on.
#[test]
fn chat_drops_a_thousand_silent_members_at_once() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    const SILENT: usize = 1000;
    let server = Running::start("chat", &["127.0.0.1:0"]);
    let join = |name: &str| chat_join(&server, name);
    let silent: Vec<_> = (0..SILENT)
        .map(|i| {
            let (stream, _) = join(&format!("quiet{i}"));
            // A small receive buffer, so the server's outbox fills sooner.
            let size: libc::c_int = 4096;
            // SAFETY: a valid socket and a correctly sized int.
            unsafe {
                libc::setsockopt(
                    stream.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            stream
        })
        .collect();
    let (alice, mut alice_reader) = join("alice");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let talker = chat_talker(alice, 20_000, done.clone());
    let mut dropped = 0;
    let mut line = String::new();
    while dropped < SILENT {
        line.clear();
        let n = alice_reader.read_line(&mut line).unwrap();
        assert!(n > 0, "alice was cut off after {dropped} were dropped");
        if line.ends_with("was too slow and was dropped\n") {
            dropped += 1;
        } else if let Some((_, names)) = line.split_once("were too slow and were dropped: ") {
            dropped += names.split(", ").count();
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut alice = talker.join().unwrap();
    writeln!(alice, "/who").unwrap();
    loop {
        line.clear();
        alice_reader.read_line(&mut line).unwrap();
        if line.starts_with("* online") {
            break;
        }
    }
    assert_eq!(line, "* online: alice\n");
    drop(silent);
}

#[test]
fn graceful_shutdown_finishes_busy_work_closes_idle_and_cancels_the_late() {
    use std::io::{Read, Write};
    let mut server = Running::start("graceful_shutdown", &["127.0.0.1:0", "--grace-ms", "1000"]);
    let connect = |work: Option<u32>| {
        let mut stream = server.connect();
        if let Some(ms) = work {
            writeln!(stream, "work {ms}").unwrap();
        }
        let reader = BufReader::new(stream.try_clone().unwrap());
        (stream, reader)
    };
    // A bad request is answered and the connection lives on.
    let (mut quick, mut quick_reader) = connect(None);
    writeln!(quick, "play").unwrap();
    let mut line = String::new();
    quick_reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("error: send `work MS`"), "{line}");

    let (_a, mut a) = connect(Some(400)); // finishes within the grace period
    let (_b, mut b) = connect(Some(20_000)); // still busy at the deadline
    let (_c, mut c) = connect(None); // idle
    std::thread::sleep(Duration::from_millis(150)); // let the server read both requests
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());

    // The idle connection closes at once; the busy one gets its answer, then a goodbye.
    let mut rest = String::new();
    c.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
    line.clear();
    a.read_line(&mut line).unwrap();
    assert_eq!(line, "done 400\n");
    line.clear();
    a.read_line(&mut line).unwrap();
    assert_eq!(line, "bye: the server is shutting down\n");
    // No new connections.
    let refused = std::net::TcpStream::connect(&server.addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // The late one is cut off at the deadline (closed without an answer).
    let mut buf = Vec::new();
    let _ = b.read_to_end(&mut buf);
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));

    // And the process exits by itself, successfully, saying what happened.
    let mut out = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not exit"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    server
        .stdout
        .as_mut()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "{status:?} {out}");
    assert!(
        out.contains("SIGTERM: stopped accepting; 4 open connection(s), 2 busy"),
        "{out}"
    );
    assert!(out.contains("closed 2 idle connection(s)"), "{out}");
    assert!(
        out.contains("done: 1 finished in time, 1 cancelled at the deadline"),
        "{out}"
    );
}

#[cfg(feature = "hook")]
#[test]
fn std_crates_overlaps_fifty_ureq_gets_on_one_loop() {
    let out = run_bounded(example("std_crates"));
    assert!(
        out.contains("50 of 50 ureq GETs answered correctly"),
        "{out}"
    );
    // The GETs overlapped: far less than the 5 s they take one after another.
    let secs: f64 = out
        .split("all done in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a time in {out}"));
    assert!(secs < 4.0, "{out}");
}

#[test]
fn deadlock_reports_the_cycle_and_ends() {
    let out = run_bounded(example("deadlock"));
    let lines: usize = out
        .split("run ended with the deadlock report above (")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no report line in:\n{out}"));
    // The cycle (a title and two edges) and a dump of three fibers.
    assert!(lines >= 9, "{out}");
}

#[test]
fn compare_help_prints_the_options_and_succeeds() {
    let mut cmd = example("compare");
    cmd.arg("--help");
    let out = run_bounded(cmd);
    assert!(out.starts_with("compare: "), "{out}");
    assert!(!out.contains("compare: compare:"), "{out}");
    assert!(out.contains("usage: compare [--full | --smoke]"), "{out}");
    assert!(
        out.contains("-- --help"),
        "how to pass flags through cargo: {out}"
    );
    let bad = example("compare").arg("--bogus").output().unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("unknown argument '--bogus'"), "{err}");
}

#[test]
fn echo_client_against_a_dead_port_says_nothing_succeeded() {
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = example("echo_client")
        .args([format!("127.0.0.1:{port}"), "2".into(), "3".into()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 connections: every one failed, no round trip completed"),
        "{stdout}"
    );
    assert!(!stdout.contains("round trips/s"), "{stdout}");
}

#[test]
fn stall_shows_a_blocking_call_holding_the_loop_and_unblock_freeing_it() {
    let out = example("stall").output().unwrap();
    assert!(out.status.success());
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    let ticks: Vec<usize> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ticks while the worker blocked: "))
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(ticks.len(), 2, "{stdout}");
    if cfg!(feature = "hook") {
        // std::thread::sleep parks only the worker: the ticker runs on.
        assert!(ticks[0] >= 1, "{stdout}");
    } else {
        // The 50 ms sleep held the loop: the 10 ms ticker never ran.
        assert_eq!(ticks[0], 0, "{stdout}");
        assert!(
            stderr.contains("fiberloop: blocking: fiber #") && stderr.contains("'worker'"),
            "{stderr}"
        );
    }
    // Through unblock the worker parks and the ticker keeps running.
    assert!(ticks[1] >= 1, "{stdout}");
}

/// Starts `server --verbose`, has one conversation with it, and returns the
/// two lines it printed about the connection.
fn verbose_lines(server: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut running = Running::start(server, &["--verbose", "127.0.0.1:0"]);
    let mut stream = running.connect();
    let local = stream.local_addr().unwrap().to_string();
    for message in [&b"hello"[..], b"abc"] {
        stream.write_all(message).unwrap();
        let mut back = vec![0; message.len()];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(back, message);
    }
    drop(stream);
    let (a, b) = (running.line(), running.line());
    for line in [&a, &b] {
        assert!(line.starts_with(&local), "{line}");
    }
    (a, b)
}

#[test]
fn echo_servers_say_what_each_connection_did_with_verbose() {
    let (start, end) = verbose_lines("echo_server");
    assert!(start.contains(": connected, served by fiber #"), "{start}");
    assert!(end.contains(": closed after 2 reads, 8 B echoed"), "{end}");
    let (start, end) = verbose_lines("echo_server_async");
    assert!(
        start.contains(": connected, served by an async task"),
        "{start}"
    );
    assert!(end.contains(": closed after 2 reads, 8 B echoed"), "{end}");
}

#[test]
fn echo_protocol_pauses_a_client_that_does_not_read_and_resumes_it() {
    use std::io::{Read, Write};
    let mut running = Running::start("echo_protocol", &["127.0.0.1:0"]);
    let mut stream = running.connect();
    // The server's lines, read on a thread so that every wait is bounded.
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let mut stdout = running.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut line = String::new();
        while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
            let _ = lines_tx.send(std::mem::take(&mut line));
        }
    });
    // 16 MiB sent, none read: the echo backs up and the server pauses.
    const SENT: usize = 16 << 20;
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&vec![7; SENT]));
    let paused = lines.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        paused.contains(": pause_writing (the client is not reading; "),
        "{paused}"
    );
    let mut got = 0;
    let mut buf = vec![0; 1 << 20];
    while got < SENT {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0 && buf[..n].iter().all(|&b| b == 7));
        got += n;
    }
    sender.join().unwrap().unwrap();
    let resumed = lines.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(resumed.contains(": resume_writing ("), "{resumed}");
}

#[test]
fn async_from_scratch_polls_once_to_start_and_once_per_wake() {
    let out = run_bounded(example("async_from_scratch"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..4],
        [
            "executor: poll task 0",
            "    ann: step 1, then sleep 30 ms",
            "executor: poll task 1",
            "    bob: step 1, then sleep 20 ms",
        ],
        "{out}"
    );
    // A wake puts the task back, and the executor's next poll is of it.
    for (i, line) in lines.iter().enumerate() {
        if let Some(id) = line.strip_prefix("  waker: task ") {
            let id = id.split(' ').next().unwrap();
            assert_eq!(lines[i + 1], format!("executor: poll task {id}"), "{out}");
        }
    }
    let polls = |id: usize| {
        lines
            .iter()
            .filter(|l| **l == format!("executor: poll task {id}"))
            .count()
    };
    assert_eq!((polls(0), polls(1)), (3, 4), "{out}");
    assert!(
        out.contains("ann: finished") && out.contains("bob: finished"),
        "{out}"
    );
}

#[test]
fn fiber_scheduler_parks_plain_sleep_and_read_calls() {
    let out = run_bounded(example("fiber_scheduler"));
    let at = |line: &str| {
        out.lines()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("no {line:?} in {out}"))
    };
    // The reader's first read finds nothing and parks; epoll wakes it after
    // the writer sends, and it gets the word.
    let parked = at("    reader: read → WouldBlock, park until readable");
    assert!(parked < at("    writer: send \"hello\""), "{out}");
    assert!(
        at("    writer: send \"hello\"") < at("    reader: got \"hello\""),
        "{out}"
    );
    assert!(
        at("sched: epoll says readable: wake reader") < at("    reader: got \"hello\""),
        "{out}"
    );
    assert!(
        at("    reader: got \"world\"") < at("    reader: end of stream"),
        "{out}"
    );
    for tick in 1..=3 {
        at(&format!("    ticker: tick {tick}"));
    }
    assert!(out.ends_with("sched: all fibers done\n"), "{out}");
}

#[test]
fn switch_cost_prints_the_three_switches() {
    let out = run_bounded(example("switch_cost"));
    for what in [
        "bare coroutine, resume + suspend:",
        "two fibers yielding to each other:",
        "two OS threads passing a token:",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("no {what} in {out}"));
        let ns: f64 = line[what.len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no figure in {line}"));
        assert!(ns > 0.0, "{line}");
    }
}
