//! What the load generator needs of HTTP/1.1: request bytes, and the length, status and
//! `Connection: close` of each response in a byte stream.

/// One parsed response head and the bytes its whole message takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Head plus body.
    pub len: usize,
    /// The server will close after this response.
    pub close: bool,
    /// The `x-id` header, if the server echoed one (the soak's requests carry ids).
    pub id: Option<u64>,
}

/// Parses the first response in `buf`. `Ok(None)`: not all there yet.
pub fn parse(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut r = httparse::Response::new(&mut headers);
    let head_len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed response: {e}")),
    };
    let (mut body, mut close, mut id) = (0usize, false, None);
    for h in r.headers.iter() {
        let v = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            body = v.parse().map_err(|_| format!("bad content-length {v:?}"))?;
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = v.eq_ignore_ascii_case("close");
        } else if h.name.eq_ignore_ascii_case("x-id") {
            id = v.parse().ok();
        }
    }
    let len = head_len + body;
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(Head { status: r.code.unwrap_or(0), len, close, id }))
}

/// A `GET` for `path`; `close` asks the server to close after answering.
pub fn get(path: &str, close: bool) -> Vec<u8> {
    let conn = if close { "Connection: close\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{conn}\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pipelined_responses_split_anywhere() {
        let two = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nx-id: 7\r\n\r\nhello\nHTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let first = parse(two).unwrap().unwrap();
        assert_eq!(first, Head { status: 200, len: 53, close: false, id: Some(7) });
        let second = parse(&two[first.len..]).unwrap().unwrap();
        assert_eq!((second.status, second.close, second.len), (503, true, two.len() - first.len));
        for cut in 0..first.len {
            assert_eq!(parse(&two[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(parse(b"\x00garbage\r\n\r\n").is_err());
    }
}
