//! Just enough HTTP/1.1 for the `http_hello` and `gateway` examples, with no
//! I/O in it: the examples' fibers and tasks read bytes into a [`Buffer`] and
//! ask it for the next request. Parsing is `httparse`'s; this adds framing
//! (`Content-Length` bodies, keep-alive rules) and the limits a server needs.

#![allow(dead_code)] // each example uses its part

use std::io::{self, ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// How long a whole request may take to arrive (head and body, counted from
/// the end of the previous response), and how long a response may wait for
/// the client to read it, unless the server says otherwise. Per request,
/// not per read: a client trickling one byte at a time (slowloris) is cut
/// off all the same.
pub const IDLE: Duration = Duration::from_secs(10);

/// The read timeout left before `deadline`; `TimedOut` once it has passed.
pub fn time_left(deadline: Instant) -> io::Result<Duration> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(io::Error::new(ErrorKind::TimedOut, "request took too long")),
    }
}
/// How much a read asks for.
pub const CHUNK: usize = 4096;

/// The largest request head accepted; a longer one gets `431`.
pub const MAX_HEAD: usize = 8 * 1024;
/// The largest request body accepted; a longer one gets `413`.
pub const MAX_BODY: usize = 1024 * 1024;
/// The most headers a request may have.
const MAX_HEADERS: usize = 64;

/// What to say when a read ended the connection, if anything: a timeout in
/// the middle of a request gets `408`.
pub fn on_silence(buffer: &Buffer, error: &io::Error) -> Option<Response> {
    (error.kind() == ErrorKind::TimedOut && !buffer.is_empty())
        .then(|| Response::text(408, "request timeout\n"))
}

/// After a rejection: how long, and how much, to drain what the client still
/// sends, so that closing does not reset the connection (and destroy the
/// response) while its bytes sit unread: nginx's "lingering close".
pub const LINGER: Duration = Duration::from_secs(2);
pub const LINGER_BYTES: usize = 256 * 1024;

/// Sends a rejection and closes the connection gracefully.
pub fn reject(mut stream: fiberloop::net::TcpStream, response: &Response) -> io::Result<()> {
    stream.write_all(&response.to_bytes(false))?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let deadline = Instant::now() + LINGER; // for the whole drain, not per read
    let mut sink = [0; CHUNK];
    let mut drained = 0;
    while drained < LINGER_BYTES {
        stream.set_read_timeout(Some(time_left(deadline)?))?;
        match stream.read(&mut sink)? {
            0 => break,
            n => drained += n,
        }
    }
    Ok(())
}

/// Serves one connection in a fiber, answering each request with `handler`
/// (which may block its fiber too); reads block only this fiber. Ends when
/// the client closes, asks to, goes quiet for `idle`, or sends a request
/// that is refused (answered, then a lingering close).
pub fn serve(
    mut stream: fiberloop::net::TcpStream,
    idle: Duration,
    mut handler: impl FnMut(&Request) -> Response,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    // A client that sends requests but never reads the responses is cut off.
    stream.set_write_timeout(Some(idle))?;
    let mut buffer = Buffer::default();
    let mut deadline = Instant::now() + idle;
    loop {
        match buffer.next_request() {
            Next::Request(request) => {
                let response = handler(&request);
                stream.write_all(&response.to_bytes(request.keep_alive))?;
                if !request.keep_alive {
                    return Ok(());
                }
                deadline = Instant::now() + idle;
            }
            Next::Reject(response) => return reject(stream, &response),
            Next::NeedMore => match time_left(deadline)
                .and_then(|left| stream.set_read_timeout(Some(left)))
                .and_then(|()| stream.read(buffer.spare(CHUNK)))
            {
                Ok(0) => return Ok(()), // the client closed
                Ok(n) => buffer.filled(n),
                Err(e) => {
                    if let Some(response) = on_silence(&buffer, &e) {
                        return reject(stream, &response);
                    }
                    return Err(e);
                }
            },
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the client wants the connection kept open after the response
    /// (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with keep-alive).
    pub keep_alive: bool,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Request {
    /// The body length from `Content-Length`, which may appear several
    /// times or as a list only if every value is the same number (RFC 9112
    /// §6.3: anything else is an unrecoverable framing error).
    fn content_length(&self) -> Result<Option<usize>, &'static str> {
        let mut length = None;
        let values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .flat_map(|(_, v)| v.split(','));
        for value in values {
            let n: usize = value.trim().parse().map_err(|_| "bad content-length\n")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting content-length headers\n");
            }
            length = Some(n);
        }
        Ok(length)
    }
}

/// What the bytes received so far amount to.
#[derive(Debug)]
pub enum Next {
    /// A whole request (its bytes are consumed from the buffer).
    Request(Request),
    /// Not a whole request yet: read more.
    NeedMore,
    /// A request the server refuses: send this response and close.
    Reject(Response),
}

/// Bytes read from a connection and not yet parsed: `data[..len]`, with
/// room after it to read into.
#[derive(Debug, Default)]
pub struct Buffer {
    data: Vec<u8>,
    len: usize,
}

impl Buffer {
    /// Room to read into: `n` bytes past the data.
    pub fn spare(&mut self, n: usize) -> &mut [u8] {
        if self.data.len() < self.len + n {
            self.data.resize(self.len + n, 0);
        }
        &mut self.data[self.len..self.len + n]
    }

    /// Counts `n` bytes read into the last [`spare`](Self::spare) as data.
    pub fn filled(&mut self, n: usize) {
        self.len += n;
    }

    /// Whether bytes of an unfinished request wait here.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops the first `n` bytes of data.
    fn consume(&mut self, n: usize) {
        self.data.copy_within(n..self.len, 0);
        self.len -= n;
    }

    /// The next request, if the buffer holds one.
    pub fn next_request(&mut self) -> Next {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let head_len = match parsed.parse(&self.data[..self.len]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if self.len > MAX_HEAD => {
                return Next::Reject(Response::text(431, "request header fields too large\n"))
            }
            Ok(httparse::Status::Partial) => return Next::NeedMore,
            Err(httparse::Error::TooManyHeaders) => {
                return Next::Reject(Response::text(431, "too many header fields\n"))
            }
            Err(e) => return Next::Reject(Response::text(400, &format!("bad request: {e}\n"))),
        };
        if head_len > MAX_HEAD {
            return Next::Reject(Response::text(431, "request header fields too large\n"));
        }
        let version = parsed.version.unwrap_or(1);
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let mut request = Request {
            method: parsed.method.unwrap_or("GET").to_string(),
            path: parsed.path.unwrap_or("/").to_string(),
            headers,
            body: Vec::new(),
            keep_alive: false,
        };
        let connection = request.header("connection").map(str::to_ascii_lowercase);
        request.keep_alive = match connection.as_deref() {
            Some("close") => false,
            Some("keep-alive") => true,
            _ => version == 1,
        };
        if request.header("transfer-encoding").is_some() {
            return Next::Reject(Response::text(
                501,
                "chunked request bodies are not supported\n",
            ));
        }
        let body_len = match request.content_length() {
            Ok(None) => 0,
            Ok(Some(n)) if n <= MAX_BODY => n,
            Ok(Some(_)) => return Next::Reject(Response::text(413, "request body too large\n")),
            Err(why) => return Next::Reject(Response::text(400, why)),
        };
        if self.len < head_len + body_len {
            return Next::NeedMore;
        }
        request.body = self.data[head_len..head_len + body_len].to_vec();
        self.consume(head_len + body_len);
        Next::Request(request)
    }
}

/// A response to send.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    /// A plain-text response.
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: body.as_bytes().to_vec(),
        }
    }

    /// The response's bytes, with `Content-Length` and `Connection` set.
    pub fn to_bytes(&self, keep_alive: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" },
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// Parses a whole response (as a backend sent it before closing).
    ///
    /// # Errors
    /// A message saying what is wrong with it.
    pub fn parse(bytes: &[u8]) -> Result<Response, String> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(bytes) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Err("truncated response head".into()),
            Err(e) => return Err(format!("bad response: {e}")),
        };
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let mut body = &bytes[head_len..];
        if let Some(len) = header("content-length") {
            let len: usize = len.parse().map_err(|_| "bad content-length")?;
            if body.len() < len {
                return Err("truncated response body".into());
            }
            body = &body[..len];
        }
        Ok(Response {
            status: parsed.code.unwrap_or(502),
            content_type: header("content-type")
                .unwrap_or_else(|| "application/octet-stream".into()),
            body: body.to_vec(),
        })
    }
}

/// The reason phrase for the statuses these examples send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
