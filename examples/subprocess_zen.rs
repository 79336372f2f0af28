//! The asyncio tutorial's subprocess demo, with fibers: run
//! `python3 -c "import this"` and print the Zen of Python line by line as it
//! arrives, while a ticker fiber keeps ticking on the same thread. Without
//! python3, `ls -l /` stands in.
//!
//! Run: `cargo run --example subprocess_zen`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn command() -> Command {
    let python = Command::new("python3").arg("--version").output();
    if python.is_ok_and(|out| out.status.success()) {
        let mut cmd = Command::new("python3");
        // Slowed down a little, so the ticks interleave visibly.
        cmd.args(["-u", "-c", "import this, sys; sys.stdout.flush()"]);
        cmd
    } else {
        let mut cmd = Command::new("ls");
        cmd.args(["-l", "/"]);
        cmd
    }
}

fn main() -> std::io::Result<()> {
    fiberloop::run(|| {
        let ticker = fiberloop::spawn(|| {
            for n in 1.. {
                fiberloop::sleep(Duration::from_millis(1));
                if n % 5 == 0 {
                    println!("  [tick {n}]");
                }
            }
        });
        let mut child = fiberloop::process::spawn(command().stdout(Stdio::piped()))?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = 0;
        for line in BufReader::new(stdout).lines() {
            println!("{}", line?);
            lines += 1;
            fiberloop::sleep(Duration::from_millis(2)); // a slow reader: let the ticker in
        }
        let status = child.wait()?;
        ticker.cancel();
        println!("{lines} lines; the child exited with {status}");
        Ok(())
    })
}
