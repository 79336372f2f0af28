//! A line-based chat server: connect with `nc 127.0.0.1 7100` (or telnet),
//! pick a name, and every line you type goes to everyone else.
//!
//! Run: `cargo run --release --example chat -- [ADDR]` (default `127.0.0.1:7100`).
//! Commands: `/who` lists who is here, `/quit` leaves.
//!
//! Each client has two fibers: one reads its lines (plain `read_line`) and
//! one writes its outbox, a bounded channel, to its socket. A broadcast only
//! puts the line in each outbox (`try_send`), so a client that stops reading
//! never slows the room: once its outbox is full it is dropped. The room is
//! plain `RefCell` state, since every fiber runs on this one thread.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use fiberloop::net::{TcpListener, TcpStream};
use fiberloop::sync::{bounded, Sender, TrySendError};

/// The longest line accepted.
const MAX_LINE: usize = 1024;
/// How many lines may wait for a slow client before it is dropped.
const OUTBOX: usize = 256;
/// How long a client may stay silent.
const IDLE: Duration = Duration::from_secs(30 * 60);
/// How long a write to a client may wait for it to read.
const WRITE_STALL: Duration = Duration::from_secs(10);

type Line = Arc<str>;

/// Who is in the room, and their outboxes.
#[derive(Default)]
struct Room {
    members: RefCell<BTreeMap<String, Sender<Line>>>,
}

impl Room {
    /// Sends `line` to everyone but `from`. Members whose outbox is full are
    /// dropped (their writer fibers end and close their sockets), and the
    /// room gets one notice naming them all, which may drop more: a loop, not
    /// recursion, so that a thousand members dropped at once take no stack
    /// (and one notice, not a thousand, so a reading member's outbox keeps up).
    fn broadcast(&self, from: &str, line: &str) {
        let mut from = from.to_owned();
        let mut line = Line::from(line);
        loop {
            let mut slow = Vec::new();
            self.members.borrow_mut().retain(|name, outbox| {
                let full = *name != from
                    && matches!(outbox.try_send(line.clone()), Err(TrySendError::Full(_)));
                if full {
                    slow.push(name.clone());
                }
                !full
            });
            line = match slow.as_slice() {
                [] => return,
                [name] => format!("* {name} was too slow and was dropped\n").into(),
                names => format!(
                    "* {} were too slow and were dropped: {}\n",
                    names.len(),
                    names.join(", ")
                )
                .into(),
            };
            from.clear(); // the notice goes to everyone left
        }
    }

    /// Joins `name` unless it is taken; returns how many are online then.
    fn join(&self, name: &str, outbox: Sender<Line>) -> Option<usize> {
        let mut members = self.members.borrow_mut();
        if members.contains_key(name) {
            return None;
        }
        members.insert(name.to_string(), outbox);
        Some(members.len())
    }

    fn leave(&self, name: &str) {
        if self.members.borrow_mut().remove(name).is_some() {
            self.broadcast(name, &format!("* {name} left\n"));
        }
    }

    fn who(&self) -> String {
        let members = self.members.borrow();
        let names: Vec<&str> = members.keys().map(String::as_str).collect();
        format!("* online: {}\n", names.join(", "))
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes, without its line ending.
/// `Ok(None)` at EOF.
fn read_line(reader: &mut BufReader<TcpStream>) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") && line.len() > MAX_LINE {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
    }
    let text = String::from_utf8_lossy(&line);
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
}

fn valid_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// One client's session, in its reader fiber.
fn session(stream: TcpStream, room: &Room) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    let mut reader = BufReader::new(stream.clone());
    let mut writer = stream.clone();
    writer.write_all(b"welcome to fiberloop chat! your name?\n")?;
    let (outbox, inbox) = bounded::<Line>(OUTBOX);
    let name = loop {
        let Some(name) = read_line(&mut reader)? else {
            return Ok(());
        };
        if !valid_name(&name) {
            writer.write_all(b"* names are 1-20 letters, digits, - or _; try another:\n")?;
        } else if let Some(online) = room.join(&name, outbox.clone()) {
            writer.write_all(
                format!("hello {name}, {online} online; /who lists, /quit leaves\n").as_bytes(),
            )?;
            break name;
        } else {
            writer.write_all(b"* name taken, try another:\n")?;
        }
    };
    drop(outbox); // the room holds the only sender: leaving ends the writer
    room.broadcast(&name, &format!("* {name} joined\n"));

    // Set by the reader when it leaves; if the writer ends first, the room
    // dropped this client (or its socket failed), and the reader must wake.
    let leaving = Rc::new(Cell::new(false));
    writer.set_write_timeout(Some(WRITE_STALL))?;
    let writer_fiber = fiberloop::spawn({
        let leaving = leaving.clone();
        move || {
            for line in inbox {
                if writer.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
            let how = if leaving.get() {
                Shutdown::Write // the reader is done: just send EOF
            } else {
                Shutdown::Both // wakes the reader, blocked in `read_line`
            };
            let _ = writer.shutdown(how);
        }
    });

    let result = loop {
        match read_line(&mut reader) {
            Ok(None) => break Ok(()),
            Ok(Some(line)) if line == "/quit" => break Ok(()),
            Ok(Some(line)) if line == "/who" => {
                if let Some(outbox) = room.members.borrow().get(&name) {
                    let _ = outbox.try_send(room.who().into());
                }
            }
            Ok(Some(line)) if line.is_empty() => {}
            Ok(Some(line)) => room.broadcast(&name, &format!("{name}: {line}\n")),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                if let Some(outbox) = room.members.borrow().get(&name) {
                    let _ = outbox.try_send("* line too long, bye\n".into());
                }
                break Err(e);
            }
            Err(e) => break Err(e),
        }
    };
    leaving.set(true);
    room.leave(&name); // drops our outbox: the writer sends what is queued, then closes
    let _ = writer_fiber.join();
    if result.is_err() {
        linger(&mut reader);
    }
    result
}

/// Before closing on a client that may still be sending: read and discard
/// for a moment, so the close does not reset the connection (which could
/// destroy our last line before the client reads it).
fn linger(reader: &mut BufReader<TcpStream>) {
    if reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(1)))
        .is_ok()
    {
        let _ = io::copy(&mut reader.by_ref().take(64 * 1024), &mut io::sink());
    }
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7100".into());
    fiberloop::run(move || {
        let listener = TcpListener::bind(addr.as_str())?;
        println!("chat server listening on {}", listener.local_addr()?);
        let room = Rc::new(Room::default());
        loop {
            let Ok((stream, _)) = listener.accept() else {
                continue;
            };
            let room = room.clone();
            fiberloop::spawn(move || {
                if let Err(e) = session(stream, &room) {
                    eprintln!("client ended: {e}");
                }
            });
        }
    })
}
