//! Subprocesses: output read line by line while other fibers run, exit
//! statuses, kill, stdin, and the errors of bad input.

use std::cell::Cell;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use fiberloop::process;

#[test]
fn output_arrives_line_by_line_while_a_ticker_runs() {
    fiberloop::run(|| {
        let ticks = Rc::new(Cell::new(0));
        let ticker = fiberloop::spawn({
            let ticks = ticks.clone();
            move || loop {
                fiberloop::sleep(Duration::from_millis(2));
                ticks.set(ticks.get() + 1);
            }
        });
        let mut child = process::spawn(
            Command::new("sh")
                .args(["-c", "for i in 1 2 3; do echo line $i; sleep 0.02; done"])
                .stdout(Stdio::piped()),
        )
        .unwrap();
        let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map(Result::unwrap)
            .collect();
        assert_eq!(lines, ["line 1", "line 2", "line 3"]);
        assert!(child.wait().unwrap().success());
        assert!(
            ticks.get() >= 5,
            "the ticker ran {} times meanwhile",
            ticks.get()
        );
        ticker.cancel();
    });
}

#[test]
fn wait_reports_the_exit_code_and_kill_the_signal() {
    use std::os::unix::process::ExitStatusExt;
    fiberloop::run(|| {
        let mut failing = process::spawn(Command::new("sh").args(["-c", "exit 3"])).unwrap();
        assert_eq!(failing.wait().unwrap().code(), Some(3));

        let mut sleeper = process::spawn(Command::new("sleep").arg("10")).unwrap();
        assert!(sleeper.try_wait().unwrap().is_none());
        sleeper.kill().unwrap();
        assert_eq!(sleeper.wait().unwrap().signal(), Some(libc::SIGKILL));
    });
}

#[test]
fn stdin_feeds_the_child_and_a_child_that_exits_early_breaks_the_pipe() {
    fiberloop::run(|| {
        let mut cat = process::spawn(
            Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        )
        .unwrap();
        let mut stdin = cat.stdin.take().unwrap();
        stdin.write_all(b"round trip\n").unwrap();
        drop(stdin); // end of file: cat exits
        let mut out = String::new();
        cat.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "round trip\n");
        assert!(cat.wait().unwrap().success());

        let mut quitter = process::spawn(Command::new("true").stdin(Stdio::piped())).unwrap();
        let mut stdin = quitter.stdin.take().unwrap();
        quitter.wait().unwrap();
        // Big enough to fill the pipe if the reader were alive.
        let err = stdin.write_all(&vec![0; 1 << 20]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    });
}

#[test]
fn a_missing_program_is_not_found() {
    let err = process::spawn(&mut Command::new("/nonexistent/fiberloop-test")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}
