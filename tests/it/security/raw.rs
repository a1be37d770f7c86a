//! HTTP on raw TCP, for requests a client library would refuse to send (a bad Host, broken
//! framing, oversized heads) and to tell a clean answer from a dropped connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::common::MCP_ACCEPT;

/// What came back on a raw TCP connection.
#[derive(Debug)]
#[allow(dead_code, reason = "the fields are read through Debug, in assertion messages")]
pub enum Raw {
    Answered {
        status: u16,
        head: String,
        body: Vec<u8>,
    },
    /// The connection ended or was reset before a complete response arrived.
    Dropped {
        received: usize,
        error: String,
    },
}

impl Raw {
    pub fn status(&self) -> Option<u16> {
        match self {
            Raw::Answered { status, .. } => Some(*status),
            Raw::Dropped { .. } => None,
        }
    }
}

/// Whether `data` holds a complete response: head, and a body of its Content-Length.
fn complete_response(data: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let body = &data[end + 4..];
    (body.len() >= length).then(|| (status, head, body[..length].to_vec()))
}

/// Sends `request` on a fresh connection (writing and reading at once, since the server may
/// answer before it has read everything); `close_write` half-closes after the last byte.
pub async fn raw_exchange(addr: &str, request: Vec<u8>, close_write: bool) -> Raw {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        // Write errors are expected when the server answers early and closes.
        let _ = writer.write_all(&request).await;
        if close_write {
            let _ = writer.shutdown().await;
        }
        writer
    });
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some((status, head, body)) = complete_response(&received) {
                return Raw::Answered { status, head, body };
            }
            match reader.read(&mut buf).await {
                Ok(0) => {
                    return Raw::Dropped { received: received.len(), error: "EOF".into() };
                }
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(error) => {
                    return Raw::Dropped { received: received.len(), error: error.to_string() };
                }
            }
        }
    })
    .await
    .unwrap_or(Raw::Dropped { received: usize::MAX, error: "no answer in 10 s".into() });
    // Keep the write half open until the answer is in (dropping it would close it).
    if let Ok(writer) = tokio::time::timeout(Duration::from_secs(5), write).await {
        drop(writer);
    }
    outcome
}

/// `host:port` of a server URL.
pub fn addr_of(server_url: &str) -> String {
    server_url.trim_start_matches("http://").to_owned()
}

/// A raw HTTP/1.1 POST to /api/mcp addressed to `host` (`Host:`), with `token`, the given
/// extra header lines and `body`.
pub fn raw_post(host: &str, token: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /api/mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: {MCP_ACCEPT}\r\n{extra_headers}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}
