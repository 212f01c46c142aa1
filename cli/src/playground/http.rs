//! A small HTTP/1.1 server for the playground's helper services: `std::net`, one thread per
//! connection, keep-alive, `Content-Length` and chunked request bodies.
//!
//! It is meant for loopback traffic from Envoy and curl, not for the internet, but it still
//! bounds what a client can make it hold (header size and count, body size, idle time,
//! concurrent connections), so a misbehaving test cannot exhaust the machine.

use std::io::{self, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest request head (request line and headers) accepted: Envoy's default limit (60 KiB)
/// plus room.
pub const MAX_HEAD_BYTES: usize = 96 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 200;
/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Connections open at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 512;
/// An idle keep-alive connection is closed after this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A parsed request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent.
    pub method: String,
    /// The request target, as sent (path and query).
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: &'static str,
    /// Every header in the order received, names as sent, values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The query string without `?` (empty when absent).
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }

    /// The first value of a header, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`, which the server writes.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body of the given content type.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        let mut body = value.to_string();
        body.push('\n');
        Response::new(status, "application/json", body)
    }

    /// A plain-text response (a trailing newline is added).
    pub fn text(status: u16, text: &str) -> Self {
        Response::new(status, "text/plain; charset=utf-8", format!("{text}\n"))
    }
}

/// What a handler wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Send this response.
    Respond(Response),
    /// Close the connection without answering (a server that is "down" for the client).
    Drop,
}

/// A request handler shared by every connection thread.
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// Serves `listener` forever, one thread per connection.
pub fn serve(listener: TcpListener, handler: Handler) -> io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let handler = Arc::clone(&handler);
        let counter = Arc::clone(&open);
        let spawned = std::thread::Builder::new().name("http".into()).spawn(move || {
            let _ = handle_connection(stream, handler.as_ref());
            counter.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            // The thread never ran, so its decrement must happen here.
            open.fetch_sub(1, Ordering::SeqCst);
        }
    }
    Ok(())
}

fn handle_connection(
    stream: TcpStream,
    handler: &(dyn Fn(&Request) -> Reply + Send + Sync),
) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut connection = Connection { stream, buffer: Vec::new() };
    loop {
        let request = match connection.read_request() {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(Malformed(status, message)) => {
                let response = Response::text(status, message);
                return write_response(&mut connection.stream, &response, "HTTP/1.1", true);
            }
        };
        let close = wants_close(&request);
        match handler(&request) {
            Reply::Respond(response) => {
                write_response(&mut connection.stream, &response, request.version, close)?
            }
            Reply::Drop => return Ok(()),
        }
        if close {
            return Ok(());
        }
    }
}

fn wants_close(request: &Request) -> bool {
    let connection = request.header("connection").map(|v| v.to_ascii_lowercase());
    match request.version {
        "HTTP/1.0" => connection.as_deref() != Some(b"keep-alive".as_slice()),
        _ => connection.as_deref() == Some(b"close".as_slice()),
    }
}

fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    version: &str,
    close: bool,
) -> io::Result<()> {
    let mut head = format!("{version} {} {}\r\n", response.status, reason(response.status));
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n", response.body.len()));
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&response.body);
    stream.write_all(&bytes)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A request the server answers itself (status, message) before closing.
struct Malformed(u16, &'static str);

impl From<io::Error> for Malformed {
    fn from(_: io::Error) -> Self {
        // The peer is gone or silent: nothing to answer, the caller just closes.
        Malformed(400, "connection error")
    }
}

struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    /// Reads more bytes into the buffer; `false` at end of stream.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let read = self.stream.read(&mut chunk)?;
        self.buffer.extend_from_slice(chunk.get(..read).unwrap_or_default());
        Ok(read > 0)
    }

    /// The next request; `None` when the client closed between requests.
    fn read_request(&mut self) -> Result<Option<Request>, Malformed> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&self.buffer) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let mut request = Request {
                        method: parsed.method.unwrap_or_default().to_string(),
                        target: parsed.path.unwrap_or_default().to_string(),
                        version: if parsed.version == Some(0) { "HTTP/1.0" } else { "HTTP/1.1" },
                        headers: parsed
                            .headers
                            .iter()
                            .map(|h| (h.name.to_string(), h.value.to_vec()))
                            .collect(),
                        body: Vec::new(),
                    };
                    self.buffer.drain(..head_len);
                    request.body = self.read_body(&request)?;
                    return Ok(Some(request));
                }
                Ok(httparse::Status::Partial) => {
                    if self.buffer.len() > MAX_HEAD_BYTES {
                        return Err(Malformed(431, "request head too large"));
                    }
                    let was_empty = self.buffer.is_empty();
                    match self.fill() {
                        Ok(true) => {}
                        Ok(false) if was_empty => return Ok(None),
                        Ok(false) => return Err(Malformed(400, "truncated request")),
                        Err(_) if was_empty => return Ok(None),
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(Malformed(431, "too many headers"))
                }
                Err(_) => return Err(Malformed(400, "malformed request")),
            }
        }
    }

    fn read_body(&mut self, request: &Request) -> Result<Vec<u8>, Malformed> {
        if request.header("expect").is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue")) {
            self.stream
                .write_all(format!("{} 100 Continue\r\n\r\n", request.version).as_bytes())?;
        }
        let chunked = request
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().windows(7).any(|w| w == b"chunked"));
        if chunked {
            return self.read_chunked();
        }
        let length = match request.header("content-length") {
            None => 0,
            Some(value) => std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(Malformed(400, "invalid content-length"))?,
        };
        if length > MAX_BODY_BYTES {
            return Err(Malformed(413, "body too large"));
        }
        self.take(length)
    }

    fn take(&mut self, length: usize) -> Result<Vec<u8>, Malformed> {
        while self.buffer.len() < length {
            if !self.fill()? {
                return Err(Malformed(400, "truncated body"));
            }
        }
        Ok(self.buffer.drain(..length).collect())
    }

    fn line(&mut self) -> Result<Vec<u8>, Malformed> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buffer.drain(..end + 2).take(end).collect();
                return Ok(line);
            }
            if self.buffer.len() > MAX_HEAD_BYTES {
                return Err(Malformed(400, "chunk line too long"));
            }
            if !self.fill()? {
                return Err(Malformed(400, "truncated chunked body"));
            }
        }
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, Malformed> {
        let mut body = Vec::new();
        loop {
            let mut line = self.line()?;
            // httparse reads the size (and skips extensions) from the line with its CRLF.
            line.extend_from_slice(b"\r\n");
            let size = match httparse::parse_chunk_size(&line) {
                Ok(httparse::Status::Complete((_, size))) => usize::try_from(size).ok(),
                _ => None,
            }
            .ok_or(Malformed(400, "invalid chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.line()?.is_empty() {}
                return Ok(body);
            }
            if body.len().saturating_add(size) > MAX_BODY_BYTES {
                return Err(Malformed(413, "body too large"));
            }
            body.extend(self.take(size)?);
            if !self.line()?.is_empty() {
                return Err(Malformed(400, "chunk not followed by CRLF"));
            }
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` (a query string): `+` is a space, `%XX` a byte,
/// invalid escapes kept as written (the WHATWG URL standard's rules, servo's `form_urlencoded`).
pub fn form_decode(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes()).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead as _;
    use std::net::TcpListener;

    fn start(handler: Handler) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(listener, handler));
        address
    }

    fn echo_body() -> Handler {
        Arc::new(|request: &Request| {
            let text = format!(
                "{} {} {}",
                request.method,
                request.target,
                String::from_utf8_lossy(&request.body)
            );
            Reply::Respond(Response::text(200, &text))
        })
    }

    /// Reads one response (head and a Content-Length body) from a buffered stream.
    fn read_response(reader: &mut io::BufReader<TcpStream>) -> (String, String) {
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length: ") {
                length = value.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (head, String::from_utf8(body).unwrap())
    }

    #[test]
    fn keep_alive_serves_several_requests_with_content_length_and_chunked_bodies() {
        let address = start(echo_body());
        let stream = TcpStream::connect(address).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = io::BufReader::new(stream);
        writer
            .write_all(b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap();
        let (head, body) = read_response(&mut reader);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert_eq!(body, "POST /a?x=1 hello\n");
        writer
            .write_all(b"PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
            .unwrap();
        let (_, body) = read_response(&mut reader);
        assert_eq!(body, "PUT /b abcde\n");
    }

    #[test]
    fn drop_closes_without_an_answer() {
        let address = start(Arc::new(|_: &Request| Reply::Drop));
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn malformed_and_oversized_requests_get_an_error_status() {
        let address = start(echo_body());
        for (request, status) in [
            (b"NOT HTTP\r\n\r\n".to_vec(), "400"),
            (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n".to_vec(), "413"),
            (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n".to_vec(), "400"),
        ] {
            let mut stream = TcpStream::connect(address).unwrap();
            stream.write_all(&request).unwrap();
            let mut out = String::new();
            stream.read_to_string(&mut out).unwrap();
            assert!(out.starts_with(&format!("HTTP/1.1 {status}")), "{out}");
        }
    }

    #[test]
    fn http_1_0_closes_after_the_response() {
        let address = start(echo_body());
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(b"GET /x HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.0 200 OK"), "{out}");
        assert!(out.contains("connection: close"), "{out}");
    }

    #[test]
    fn form_decoding_handles_plus_percent_and_bad_escapes() {
        assert_eq!(
            form_decode("scope=read+admin&sub=a%2Fb&bad=%zz&flag&"),
            vec![
                ("scope".into(), "read admin".into()),
                ("sub".into(), "a/b".into()),
                ("bad".into(), "%zz".into()),
                ("flag".into(), "".into()),
            ]
        );
    }
}
