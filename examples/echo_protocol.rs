//! The echo server of `echo_server.rs` in the callback style of PEP 3156:
//! no code here waits. The loop calls the protocol's methods as things happen,
//! and `write` buffers what the socket cannot take at once.
//!
//! Step 11 of docs/learn.md: after `echo_server_async` and `mixed`, before `stall`.
//!
//! Run: `cargo run --release --example echo_protocol -- [ADDR]` (default
//! `127.0.0.1:7000`), then `echo_client` or `nc 127.0.0.1 7000`.
//!
//! Read it next to `echo_server.rs` (fibers) and `echo_server_async.rs`: the
//! loop there lives in the handler (`read`, then `write_all`, repeat); here
//! it is the runtime's, and the handler's state lives in a struct between
//! calls. Flow control is explicit too: when a client stops reading, the
//! write buffer grows past its high mark and the protocol pauses reading, so
//! one slow client cannot make the server buffer without bound. Both turns
//! print a line, with the client's address and the bytes buffered:
//!
//! ```text
//! 127.0.0.1:36476: pause_writing (the client is not reading; 66 KiB buffered): reading from it paused
//! 127.0.0.1:36476: resume_writing (0 KiB buffered): reading from it again
//! ```

use std::io;

use fiberloop::net::TcpListener;
use fiberloop::transport::{self, Protocol, Transport};

struct Echo {
    transport: Option<Transport>,
    peer: String,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
        self.peer = transport.peer().to_string();
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(transport) = &self.transport {
            // Never waits: what the socket does not take now is buffered.
            let _ = transport.write(data);
        }
    }

    fn pause_writing(&mut self) {
        // The client reads slower than it sends: stop reading from it.
        if let Some(transport) = &self.transport {
            println!(
                "{}: pause_writing (the client is not reading; {} KiB buffered): reading from it paused",
                self.peer,
                transport.write_buffer_size() / 1024
            );
            transport.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(transport) = &self.transport {
            println!(
                "{}: resume_writing ({} KiB buffered): reading from it again",
                self.peer,
                transport.write_buffer_size() / 1024
            );
            transport.resume_reading();
        }
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        if let Some(e) = error {
            eprintln!("connection ended: {e}");
        }
        self.transport = None; // the transport is closed: let it go
    }
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    fiberloop::run(move || {
        let listener = TcpListener::bind(addr.as_str())?;
        println!(
            "echo server (protocol callbacks) listening on {}",
            listener.local_addr()?
        );
        let _server = transport::serve(listener, || Echo {
            transport: None,
            peer: String::new(),
        })?;
        // The main fiber has nothing left to do; the loop serves until killed.
        loop {
            fiberloop::sleep(std::time::Duration::from_secs(3600));
        }
    })
}
