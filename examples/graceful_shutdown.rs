//! A server that shuts down gracefully on Ctrl-C (`SIGINT`) or `SIGTERM`:
//! it stops accepting, closes idle connections, lets busy ones finish their
//! current request within a grace period, cancels whatever is left at the
//! deadline, and exits.
//!
//! Run: `cargo run --release --example graceful_shutdown -- [ADDR] [--grace-ms N]`
//! (default `127.0.0.1:7200`, 5000 ms), then with `nc 127.0.0.1 7200` send
//! `work 3000` (3 s of "work") and press Ctrl-C in the server's terminal.
//!
//! Everything here is ordinary fiber code. The signal arrives in a fiber as a
//! value (`Signals::recv`), not in a handler that may do almost nothing.
//! Cancelling a fiber unwinds it from the blocking call it waits in (the
//! call never returns), so a cancelled connection runs its destructors and
//! drops its socket whatever its code does with errors; the deadline is
//! `fiberloop::timeout` around a `WaitGroup`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use fiberloop::net::{TcpListener, TcpStream};
use fiberloop::signal::{Signals, SIGINT, SIGTERM};
use fiberloop::sync::WaitGroup;
use fiberloop::JoinHandle;

/// The longest request line read.
const MAX_LINE: u64 = 256;
/// The most work one request may ask for.
const MAX_WORK_MS: u64 = 60_000;

/// One open connection, as the shutdown sees it.
struct Conn {
    handle: JoinHandle<()>,
    busy: Rc<Cell<bool>>,
}

/// What the acceptor and the shutdown share.
#[derive(Default)]
struct Server {
    conns: RefCell<BTreeMap<u64, Conn>>,
    next_id: Cell<u64>,
    stopping: Cell<bool>,
    open: WaitGroup,
}

/// Removes a connection from the server however its fiber ends (returned,
/// failed, cancelled or panicked).
struct Registration<'a> {
    server: &'a Server,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.server.conns.borrow_mut().remove(&self.id);
        self.server.open.done();
    }
}

/// Serves `work MS` requests (sleep that long, answer `done MS`) until the
/// client leaves or the server stops.
fn serve(stream: TcpStream, busy: &Cell<bool>, server: &Server) -> io::Result<()> {
    let mut reader = BufReader::new(stream.clone());
    let mut writer = stream;
    loop {
        if server.stopping.get() {
            return writer.write_all(b"bye: the server is shutting down\n");
        }
        let mut line = String::new();
        if reader.by_ref().take(MAX_LINE).read_line(&mut line)? == 0 {
            return Ok(()); // the client left
        }
        busy.set(true);
        let ms = line
            .trim()
            .strip_prefix("work ")
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|&ms| ms <= MAX_WORK_MS);
        let reply = match ms {
            Some(ms) => {
                fiberloop::sleep(Duration::from_millis(ms)); // a cancel unwinds from here
                format!("done {ms}\n")
            }
            None => format!("error: send `work MS` with MS at most {MAX_WORK_MS}\n"),
        };
        writer.write_all(reply.as_bytes())?;
        busy.set(false);
    }
}

/// Accepts until cancelled (the shutdown's cancel unwinds it from `accept`);
/// each connection gets a fiber and a registration.
fn accept_loop(listener: TcpListener, server: Rc<Server>) {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            // Out of descriptors, say: `accept` backs off by itself.
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        let id = server.next_id.get();
        server.next_id.set(id + 1);
        let busy = Rc::new(Cell::new(false));
        server.open.add(1);
        let handle = fiberloop::spawn({
            let (server, busy) = (server.clone(), busy.clone());
            move || {
                let _registration = Registration {
                    server: &server,
                    id,
                };
                let _ = serve(stream, &busy, &server);
            }
        });
        server.conns.borrow_mut().insert(id, Conn { handle, busy });
    }
}

/// Waits for a signal, then shuts down within `grace`.
fn shutdown(signals: Signals, acceptor: JoinHandle<()>, server: &Server, grace: Duration) {
    let name = match signals.recv() {
        Ok(SIGINT) => "SIGINT",
        Ok(_) => "SIGTERM",
        Err(e) => {
            eprintln!("waiting for signals failed: {e}");
            return;
        }
    };
    server.stopping.set(true);
    acceptor.cancel(); // it unwinds from `accept`: the listener closes
    let _ = acceptor.join();

    let (busy, idle): (Vec<u64>, Vec<u64>) = {
        let conns = server.conns.borrow();
        conns.keys().partition(|id| conns[id].busy.get())
    };
    println!(
        "{name}: stopped accepting; {} open connection(s), {} busy; grace {} ms",
        busy.len() + idle.len(),
        busy.len(),
        grace.as_millis()
    );
    for id in &idle {
        if let Some(conn) = server.conns.borrow().get(id) {
            conn.handle.cancel(); // blocked reading the next request: close now
        }
    }
    println!("closed {} idle connection(s)", idle.len());

    let _ = fiberloop::timeout(grace, || server.open.wait());
    let late: Vec<JoinHandle<()>> = std::mem::take(&mut *server.conns.borrow_mut())
        .into_values()
        .map(|conn| conn.handle)
        .collect();
    for handle in &late {
        handle.cancel();
    }
    let cancelled = late.len();
    for handle in late {
        let _ = handle.join();
    }
    println!(
        "done: {} finished in time, {cancelled} cancelled at the deadline",
        busy.len().saturating_sub(cancelled)
    );
}

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:7200".to_string();
    let mut grace = Duration::from_secs(5);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--grace-ms" => {
                let Some(ms) = args.next().and_then(|v| v.parse().ok()) else {
                    eprintln!("graceful_shutdown: --grace-ms needs a number of milliseconds");
                    std::process::exit(2);
                };
                grace = Duration::from_millis(ms);
            }
            a if a.starts_with('-') => {
                eprintln!("graceful_shutdown: unknown option {a}\nusage: graceful_shutdown [ADDR] [--grace-ms N]");
                std::process::exit(2);
            }
            a => addr = a.to_string(),
        }
    }
    fiberloop::run(move || {
        // Before anything can be sent to us: from here on the signals queue
        // up for the shutdown fiber instead of killing the process.
        let signals = Signals::new(&[SIGINT, SIGTERM])?;
        let listener = TcpListener::bind(addr.as_str())?;
        println!("graceful_shutdown listening on {}", listener.local_addr()?);
        let server = Rc::new(Server::default());
        let acceptor = fiberloop::spawn({
            let server = server.clone();
            move || accept_loop(listener, server)
        });
        shutdown(signals, acceptor, &server, grace);
        Ok(())
    })
}
