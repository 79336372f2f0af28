//! Streams: the fiber pair (BufReader + stream) and the async halves with
//! line reading, exact reads, and write/drain flow control.

use std::io::{BufRead, ErrorKind, Write};

use fiberloop::streams::{self, StreamReader, StreamWriter};

#[test]
fn fiber_streams_read_lines_through_std_bufreader() {
    fiberloop::run(|| {
        let server = streams::start_server("127.0.0.1:0", |reader, mut writer| {
            for line in reader.lines() {
                writeln!(writer, "{} chars", line?.chars().count())?;
            }
            Ok(())
        })
        .unwrap();
        let (mut reader, mut writer) = streams::open_connection(server.local_addr()).unwrap();
        writer.write_all(b"hello\nf\xc3\xa9e\n").unwrap();
        let mut got = String::new();
        reader.read_line(&mut got).unwrap();
        reader.read_line(&mut got).unwrap();
        assert_eq!(got, "5 chars\n3 chars\n");
        server.close();
    });
}

async fn count_lines(mut reader: StreamReader, mut writer: StreamWriter) {
    let mut n = 0;
    let mut line = String::new();
    while reader.read_line(&mut line).await.unwrap_or(0) > 0 {
        n += 1;
        line.clear();
    }
    writer.write(format!("{n} lines\n").as_bytes());
    writer.close().await.unwrap();
}

#[test]
fn async_streams_read_lines_until_end_of_file() {
    fiberloop::block_on(async {
        let server = streams::start_server_async("127.0.0.1:0", count_lines)
            .await
            .unwrap();
        let (mut reader, mut writer) = streams::open_connection_async(server.local_addr())
            .await
            .unwrap();
        writer.write(b"one\ntwo\nthree (no newline)");
        writer.close().await.unwrap(); // end of file for the server
        let mut reply = String::new();
        assert!(reader.read_line(&mut reply).await.unwrap() > 0);
        assert_eq!(reply, "3 lines\n");
        assert_eq!(
            reader.read_line(&mut reply).await.unwrap(),
            0,
            "then end of file"
        );
        server.close();
    });
}

#[test]
fn read_exact_and_bad_input_errors() {
    fiberloop::block_on(async {
        let server = streams::start_server_async("127.0.0.1:0", |_reader, mut writer| async move {
            writer.write(b"\xff\xfe\n1234");
            let _ = writer.close().await;
        })
        .await
        .unwrap();
        let (mut reader, _writer) = streams::open_connection_async(server.local_addr())
            .await
            .unwrap();
        let mut line = String::new();
        let err = reader.read_line(&mut line).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
        let mut four = [0; 4];
        reader.read_exact(&mut four).await.unwrap();
        assert_eq!(&four, b"1234");
        let err = reader.read_exact(&mut four).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
        server.close();
    });
}

#[test]
fn drain_sends_down_to_the_low_water_mark() {
    fiberloop::block_on(async {
        // The server reads everything, slowly enough that buffers fill.
        let server = streams::start_server_async("127.0.0.1:0", |mut reader, _writer| async move {
            let mut buf = vec![0; 64 * 1024];
            while reader.read(&mut buf).await.unwrap_or(0) > 0 {
                fiberloop::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap();
        let (_reader, mut writer) = streams::open_connection_async(server.local_addr())
            .await
            .unwrap();
        writer.set_write_buffer_limits(1024, 256);
        writer.write(&vec![7; 8 * 1024 * 1024]);
        assert!(writer.needs_drain());
        writer.drain().await.unwrap();
        assert!(writer.buffered() <= 256, "{} left", writer.buffered());
        assert!(!writer.needs_drain());
        server.close();
    });
}
