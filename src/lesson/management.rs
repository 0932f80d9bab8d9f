//! Just enough of RabbitMQ's management HTTP API to switch the firehose on and off: one
//! HTTP/1.1 request per connection, JSON bodies.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The management API of the RabbitMQ an AMQP URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Management {
    /// host:port of the HTTP listener.
    pub address: String,
    authorization: String,
    pub vhost: String,
}

/// The management listener's usual port.
pub const DEFAULT_PORT: u16 = 15672;

impl Management {
    /// Same host and credentials as the AMQP URL, port 15672, the URL's vhost.
    pub fn for_amqp_url(url: &str) -> Result<Management, String> {
        let uri: lapin::uri::AMQPUri = url
            .parse()
            .map_err(|e| format!("cannot read the broker URL `{url}`: {e}"))?;
        let host = &uri.authority.host;
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let user = &uri.authority.userinfo;
        let credentials = format!("{}:{}", user.username, user.password);
        Ok(Management {
            address: format!("{host}:{DEFAULT_PORT}"),
            authorization: base64::engine::general_purpose::STANDARD.encode(credentials),
            vhost: uri.vhost,
        })
    }

    fn vhost_path(&self) -> String {
        format!("/api/vhosts/{}", percent_encode(&self.vhost))
    }

    /// Whether tracing is on for the vhost, and the vhost's description and tags (a PUT
    /// without them would clear them).
    pub async fn vhost(&self) -> Result<Value, String> {
        let (status, body) = self.request("GET", &self.vhost_path(), None).await?;
        if status != 200 {
            return Err(format!(
                "management API at {}: GET {} answered {status}: {}",
                self.address,
                self.vhost_path(),
                body.trim()
            ));
        }
        serde_json::from_str(&body).map_err(|e| {
            format!(
                "management API at {}: GET {} answered no JSON: {e}",
                self.address,
                self.vhost_path()
            )
        })
    }

    /// Whether a queue exists. Unlike a passive queue.declare, this does not count as use of
    /// the queue (which would restart its `x-expires` clock).
    pub async fn queue_exists(&self, queue: &str) -> Result<bool, String> {
        let path = format!(
            "/api/queues/{}/{}",
            percent_encode(&self.vhost),
            percent_encode(queue)
        );
        match self.request("GET", &path, None).await? {
            (200, _) => Ok(true),
            (404, _) => Ok(false),
            (status, body) => Err(format!(
                "management API at {}: GET {path} answered {status}: {}",
                self.address,
                body.trim()
            )),
        }
    }

    /// Turns tracing on or off, keeping the vhost's description and tags.
    pub async fn set_tracing(&self, on: bool, vhost: &Value) -> Result<(), String> {
        let mut body = serde_json::Map::new();
        body.insert("tracing".into(), Value::Bool(on));
        if let Some(description) = vhost.get("description").and_then(Value::as_str) {
            body.insert("description".into(), Value::String(description.into()));
        }
        if let Some(tags) = vhost.get("tags").and_then(Value::as_array) {
            let tags: Vec<&str> = tags.iter().filter_map(Value::as_str).collect();
            body.insert("tags".into(), Value::String(tags.join(",")));
        }
        if let Some(kind) = vhost.get("default_queue_type").and_then(Value::as_str) {
            if kind != "undefined" {
                body.insert("default_queue_type".into(), Value::String(kind.into()));
            }
        }
        let body = Value::Object(body).to_string();
        let (status, answer) = self.request("PUT", &self.vhost_path(), Some(&body)).await?;
        if !(200..300).contains(&status) {
            return Err(format!(
                "management API at {}: PUT {} answered {status}: {}",
                self.address,
                self.vhost_path(),
                answer.trim()
            ));
        }
        Ok(())
    }

    /// One request; (status, body).
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), String> {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(&self.address)
                .await
                .map_err(|e| format!("cannot reach the management API at {}: {e}", self.address))?;
            let body = body.unwrap_or("");
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.address,
                self.authorization,
                body.len()
            );
            let io = |e: std::io::Error| format!("management API at {}: {e}", self.address);
            stream.write_all(request.as_bytes()).await.map_err(io)?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.map_err(io)?;
            parse_response(&response)
                .ok_or_else(|| format!("management API at {}: not an HTTP answer", self.address))
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| format!("management API at {}: no answer in 10 s", self.address))?
    }
}

/// Status and body of an HTTP/1.1 response read to its end.
fn parse_response(response: &[u8]) -> Option<(u16, String)> {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..split]).ok()?;
    let rest = &response[split + 4..];
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// A vhost name as one path segment.
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_management_api_is_found_from_the_amqp_url() {
        let m = Management::for_amqp_url("amqp://bob:s%40cret@rabbit.local:5672/%2f").unwrap();
        assert_eq!(m.address, "rabbit.local:15672");
        assert_eq!(m.vhost, "/");
        assert_eq!(m.vhost_path(), "/api/vhosts/%2F");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&m.authorization)
            .unwrap();
        assert_eq!(decoded, b"bob:s@cret");
    }

    #[test]
    fn chunked_and_plain_answers_are_read() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), Some((200, "{}".to_string())));
        let chunked =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked),
            Some((200, "{\"a\":1}".to_string()))
        );
        assert_eq!(parse_response(b"garbage"), None);
    }
}
