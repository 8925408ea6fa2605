//! A small HTTP/1.1 client over raw TCP, written for these tests rather than pulling reqwest's
//! dependency tree into the workspace: it can also do what a polite client cannot, such as
//! declaring a 2 GiB body and sending none, or streaming a chunked body past a limit.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

/// How long any single read waits before the test fails.
pub const READ_WAIT_MAX: Duration = Duration::from_secs(20);

/// A complete response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "status {}: body is not JSON ({error}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `error.code` of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}", self.json()))
            .to_owned()
    }
}

/// A request body.
pub enum Body<'a> {
    /// No body.
    None,
    /// A body with a `Content-Length`.
    Bytes(&'a [u8]),
    /// A chunked body of these chunks.
    Chunked(Vec<Vec<u8>>),
    /// Headers declaring `Content-Length: n`, and no body at all.
    DeclaredOnly(u64),
}

/// Sends one request on a new connection (`Connection: close`) and reads the whole response.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
) -> Response {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the gateway");
    let (read, mut write) = stream.into_split();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match &body {
        Body::None => {}
        Body::Bytes(bytes) => head.push_str(&format!("Content-Length: {}\r\n", bytes.len())),
        Body::Chunked(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
        Body::DeclaredOnly(length) => head.push_str(&format!("Content-Length: {length}\r\n")),
    }
    head.push_str("\r\n");
    // The body is written while the response is read: a server may answer (413, say) and
    // close before taking the whole body, and the answer must still be seen.
    let chunks: Vec<Vec<u8>> = match body {
        Body::None | Body::DeclaredOnly(_) => Vec::new(),
        Body::Bytes(bytes) => bytes.chunks(64 * 1024).map(<[u8]>::to_vec).collect(),
        Body::Chunked(chunks) => chunks
            .into_iter()
            .map(|chunk| {
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                framed
            })
            .chain(std::iter::once(b"0\r\n\r\n".to_vec()))
            .collect(),
    };
    let writer = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        for chunk in chunks {
            write.write_all(&chunk).await?;
        }
        write.flush().await?;
        // Keep the write half open until the server is done; dropping it would half-close.
        Ok::<_, std::io::Error>(write)
    });
    let mut reader = BufReader::new(read);
    let response = tokio::time::timeout(READ_WAIT_MAX, read_response(&mut reader))
        .await
        .expect("the response came in time");
    // A write error is expected when the server refused the body early.
    let _ = writer.await;
    response
}

/// Reads the status line and headers.
async fn read_head(reader: &mut BufReader<OwnedReadHalf>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .await
        .expect("read the status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await.expect("read a header");
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    (status, headers)
}

async fn read_response(reader: &mut BufReader<OwnedReadHalf>) -> Response {
    let (status, headers) = read_head(reader).await;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|value| value.contains("chunked")) {
        while let Some(chunk) = read_chunk(reader).await {
            body.extend_from_slice(&chunk);
        }
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().expect("a numeric Content-Length");
        body.resize(length, 0);
        reader.read_exact(&mut body).await.expect("read the body");
    } else {
        let _ = reader.read_to_end(&mut body).await;
    }
    Response {
        status,
        headers,
        body,
    }
}

/// Reads one chunk of a chunked body; `None` at the last (empty) chunk or at the end.
async fn read_chunk(reader: &mut BufReader<OwnedReadHalf>) -> Option<Vec<u8>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let size = usize::from_str_radix(line.trim().split(';').next()?.trim(), 16).ok()?;
    if size == 0 {
        // The trailer section ends with an empty line.
        line.clear();
        let _ = reader.read_line(&mut line).await;
        return None;
    }
    let mut chunk = vec![0; size + 2];
    reader.read_exact(&mut chunk).await.ok()?;
    chunk.truncate(size);
    Some(chunk)
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:`.
    pub id: Option<String>,
    /// `event:`.
    pub event: Option<String>,
    /// `data:` lines joined by newlines.
    pub data: String,
}

impl SseEvent {
    /// The id as a position.
    pub fn position(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("event without a numeric id: {self:?}"))
    }
}

/// An open SSE stream.
pub struct SseStream {
    /// The response status.
    pub status: u16,
    /// The response headers.
    pub headers: Vec<(String, String)>,
    reader: BufReader<OwnedReadHalf>,
    /// Keeps the connection open.
    _write: tokio::net::tcp::OwnedWriteHalf,
    text: String,
    /// The body of a non-SSE (error) response.
    pub body: Vec<u8>,
    /// Comment lines (keep-alives) read so far.
    pub comments: usize,
}

impl SseStream {
    /// Opens `GET path` with `headers`.
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseStream {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the gateway");
        SseStream::open_on(stream, addr, path, headers).await
    }

    /// Like [`SseStream::open`], on a socket with a tiny receive buffer: a client that reads
    /// nothing then stalls the server quickly.
    pub async fn open_with_tiny_buffer(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> SseStream {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .set_recv_buffer_size(4096)
            .expect("a small receive buffer");
        let stream = socket.connect(addr).await.expect("connect to the gateway");
        SseStream::open_on(stream, addr, path, headers).await
    }

    async fn open_on(
        stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> SseStream {
        let (read, mut write) = stream.into_split();
        let mut head =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        write
            .write_all(head.as_bytes())
            .await
            .expect("send the request");
        let mut reader = BufReader::new(read);
        let (status, headers) = tokio::time::timeout(READ_WAIT_MAX, read_head(&mut reader))
            .await
            .expect("the response head came in time");
        let mut stream = SseStream {
            status,
            headers,
            reader,
            _write: write,
            text: String::new(),
            body: Vec::new(),
            comments: 0,
        };
        if status != 200 {
            let length = stream
                .headers
                .iter()
                .find(|(key, _)| key == "content-length")
                .and_then(|(_, value)| value.parse::<usize>().ok())
                .unwrap_or(0);
            stream.body.resize(length, 0);
            let _ = stream.reader.read_exact(&mut stream.body).await;
        }
        stream
    }

    /// The next event, or `None` when none comes within `wait` (or the stream ends).
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(event) = self.parse_one() {
                return Some(event);
            }
            let chunk = tokio::time::timeout_at(deadline, read_chunk(&mut self.reader))
                .await
                .ok()??;
            self.text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Every event arriving within `wait` of the previous one.
    pub async fn collect(&mut self, wait: Duration) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next(wait).await {
            events.push(event);
        }
        events
    }

    /// Takes one complete event off the buffered text; comments (keep-alives) are skipped.
    fn parse_one(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.text.find("\n\n")?;
            let block: String = self.text.drain(..end + 2).collect();
            let mut event = SseEvent {
                id: None,
                event: None,
                data: String::new(),
            };
            let mut has_data = false;
            for line in block.lines() {
                if line.starts_with(':') {
                    self.comments += 1;
                } else if let Some(value) = line.strip_prefix("id:") {
                    event.id = Some(value.trim_start().to_owned());
                } else if let Some(value) = line.strip_prefix("event:") {
                    event.event = Some(value.trim_start().to_owned());
                } else if let Some(value) = line.strip_prefix("data:") {
                    if has_data {
                        event.data.push('\n');
                    }
                    event
                        .data
                        .push_str(value.strip_prefix(' ').unwrap_or(value));
                    has_data = true;
                }
            }
            if has_data || event.id.is_some() {
                return Some(event);
            }
        }
    }
}
