//! Two fibers lock two mutexes in opposite order: the classic deadlock.
//!
//! Run it: `cargo run --example deadlock`. Instead of hanging at 0 % CPU,
//! the loop finds the wait-for cycle as soon as it has nothing else to do,
//! and `run` panics with the report: the cycle ("'left' waits for mutex …
//! held by 'right'"), then a dump of every fiber with what it waits on and
//! its backtrace. This example catches that panic to show it is an ordinary
//! one, and exits normally.

use std::rc::Rc;
use std::time::Duration;

use fiberloop::sync::Mutex;

fn main() {
    let outcome = std::panic::catch_unwind(|| {
        fiberloop::run(|| {
            let accounts = Rc::new(Mutex::new(100));
            let ledger = Rc::new(Mutex::new(Vec::<i32>::new()));
            let transfer = {
                let (accounts, ledger) = (accounts.clone(), ledger.clone());
                fiberloop::Builder::new().name("transfer").spawn(move || {
                    let mut balance = accounts.lock().unwrap();
                    fiberloop::sleep(Duration::from_millis(10)); // the other fiber runs
                    ledger.lock().unwrap().push(-10);
                    *balance -= 10;
                })
            };
            let audit = fiberloop::Builder::new().name("audit").spawn(move || {
                let entries = ledger.lock().unwrap();
                fiberloop::sleep(Duration::from_millis(10));
                let balance = accounts.lock().unwrap(); // opposite order
                println!("audit: {} entries, balance {}", entries.len(), *balance);
            });
            transfer.unwrap().join().unwrap();
            audit.unwrap().join().unwrap();
        })
    });
    match outcome {
        Ok(()) => println!("no deadlock (this should not happen)"),
        Err(payload) => {
            let report = payload.downcast_ref::<String>().map_or("", String::as_str);
            println!(
                "run ended with the deadlock report above ({} lines)",
                report.lines().count()
            );
        }
    }
}
