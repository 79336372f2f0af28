//! The `hook` feature with std's own sockets: a std `TcpListener` server and
//! std `TcpStream` clients, all fibers on one loop (without the feature this
//! deadlocks: the first blocking call stalls the only thread).
#![cfg(feature = "hook")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

#[test]
fn a_std_server_and_std_clients_share_one_loop() {
    fiberloop::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        const CLIENTS: usize = 50;
        let server = fiberloop::spawn(move || {
            let mut served = Vec::new();
            for _ in 0..CLIENTS {
                let (mut stream, _) = listener.accept().unwrap();
                served.push(fiberloop::spawn(move || {
                    let mut buf = [0u8; 1024];
                    let mut total = 0;
                    loop {
                        let n = stream.read(&mut buf).unwrap();
                        if n == 0 {
                            break total;
                        }
                        stream.write_all(&buf[..n]).unwrap();
                        total += n;
                    }
                }));
            }
            served.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                fiberloop::spawn(move || {
                    let mut stream = TcpStream::connect(addr).unwrap();
                    let message: Vec<u8> = (0..10_000).map(|j| (i + j) as u8).collect();
                    let mut writer = stream.try_clone().unwrap();
                    let sent = message.clone();
                    let write = fiberloop::spawn(move || {
                        writer.write_all(&sent).unwrap();
                        writer.shutdown(std::net::Shutdown::Write).unwrap();
                    });
                    let mut echoed = Vec::new();
                    stream.read_to_end(&mut echoed).unwrap();
                    write.join().unwrap();
                    assert_eq!(echoed, message, "client {i}");
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        assert_eq!(server.join().unwrap(), CLIENTS * 10_000);
    });
}
