//! HTTP/1.1 messages as bytes, for the fast path in [`fast`](crate::fast) (pure): which requests it
//! may carry and how their bodies are framed, the heads it writes to the pod and back to the client,
//! and where a chunked body ends.
//!
//! The fast path passes bodies through untouched, framing included, so only the heads are rewritten:
//! hop-by-hop headers go (RFC 9110 §7.6.1, the same rules as [`headers`](crate::headers)), the
//! client's address is appended to `X-Forwarded-For`, and everything else — `Host`,
//! `X-Forwarded-Host`/`-Proto`, `Content-Length`, a response's `Transfer-Encoding` — passes as sent.

use std::io::Write;

/// Headers parsed per message; a head with more goes the general way (hyper allows 100).
pub const MAX_HEADERS: usize = 64;

/// The largest request body the fast path carries. The body is written before the response is
/// read, so it must fit the sockets' buffers even when the pod answers without reading it; larger
/// bodies go the general way, which sends and receives at once.
pub const MAX_BODY: u64 = 64 * 1024;

/// What the fast path needs of a request it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Body bytes after the head.
    pub content_length: u64,
    /// The client keeps the connection open after the response.
    pub keep_alive: bool,
    /// `HEAD`: the response has no body whatever it says.
    pub head: bool,
    /// Safe to send again when a pooled connection turns out closed (RFC 9110 §9.2.2).
    pub idempotent: bool,
}

/// The values of a request that can name its target, in the order they are tried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Names<'a> {
    /// The configured target header.
    pub target: Option<&'a str>,
    /// `Host` (or the HTTP/2 authority).
    pub host: Option<&'a str>,
    /// The first entry of `X-Forwarded-Host`.
    pub forwarded_host: Option<&'a str>,
}

/// The names in `headers`; `target` is the configured target header's name.
pub fn names<'a>(headers: &[httparse::Header<'a>], target: Option<&str>) -> Names<'a> {
    Names {
        target: target.and_then(|t| header(headers, t)),
        host: header(headers, "host"),
        forwarded_host: header(headers, "x-forwarded-host").map(first_forwarded),
    }
}

/// The first entry of an `X-Forwarded-Host` value (the client's, when proxies appended theirs).
pub fn first_forwarded(v: &str) -> &str {
    v.split(',').next().unwrap_or_default().trim()
}

/// Whether the fast path may carry `req` (`None`: it goes the general way). It carries HTTP/1.1
/// requests with no body or a `Content-Length` one of at most [`MAX_BODY`], no `Transfer-Encoding`,
/// no `Expect` and no upgrade.
pub fn classify(req: &httparse::Request<'_, '_>) -> Option<Request> {
    if req.version != Some(1) {
        return None;
    }
    let method = req.method?;
    if method == "CONNECT" {
        return None;
    }
    let mut out = Request {
        content_length: 0,
        keep_alive: true,
        head: method == "HEAD",
        idempotent: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
        ),
    };
    let mut length: Option<u64> = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value)?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("connection") {
            if tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close")) {
                out.keep_alive = false;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return None;
        }
    }
    out.content_length = length.unwrap_or(0);
    (out.content_length <= MAX_BODY).then_some(out)
}

/// The value of the first header named `name`.
pub fn header<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
}

fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The comma-separated tokens of a header value.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Hop-by-hop headers of both directions, besides those `Connection` names. `Transfer-Encoding` is
/// not among them: a request that has one does not take the fast path, and a response's is kept
/// because its body is passed through as framed.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// The hop-by-hop test of one message's headers `all`: a name listed above or named by one of its
/// `Connection` headers (their tokens collected once per message, not once per header).
fn hop_by_hop<'h>(all: &[httparse::Header<'h>]) -> impl Fn(&str) -> bool + use<'h> {
    let named: Vec<&'h [u8]> = all
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| tokens(h.value))
        .collect();
    move |name| {
        HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
            || named
                .iter()
                .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
    }
}

fn write_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes the head `req` is sent to the pod with: the same request line and headers, without the
/// hop-by-hop ones and `drop` (the target header), `TE: trailers` kept (gRPC needs it end to end), and
/// `client` appended to `X-Forwarded-For`.
pub fn write_request(
    out: &mut Vec<u8>,
    req: &httparse::Request<'_, '_>,
    client: &str,
    drop: Option<&str>,
) {
    out.extend_from_slice(req.method.unwrap_or("GET").as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.path.unwrap_or("/").as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut te_trailers = false;
    let mut forwarded: Option<&[u8]> = None;
    let hop_by_hop = hop_by_hop(req.headers);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("x-forwarded-for") {
            let v = h.value.trim_ascii();
            if forwarded.is_none() && !v.is_empty() {
                forwarded = Some(v);
            }
            continue;
        }
        if h.name.eq_ignore_ascii_case("te") {
            te_trailers |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"trailers"));
        }
        if hop_by_hop(h.name) || drop.is_some_and(|d| h.name.eq_ignore_ascii_case(d)) {
            continue;
        }
        write_header(out, h.name, h.value);
    }
    if te_trailers {
        out.extend_from_slice(b"te: trailers\r\n");
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if let Some(prior) = forwarded {
        out.extend_from_slice(prior);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(client.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (`HEAD`, 1xx, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked: see [`Chunked`].
    Chunked,
    /// Until the pod closes the connection.
    Close,
}

/// What the fast path needs of a pod's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// How its body ends.
    pub framing: Framing,
    /// The pod's connection may carry another request afterwards.
    pub reusable: bool,
}

/// Reads a response head to a request (`head`: it was `HEAD`); `Err` names what is wrong with it.
pub fn response(resp: &httparse::Response<'_, '_>, head: bool) -> Result<Response, String> {
    let status = resp.code.ok_or("a response without a status")?;
    let mut reusable = resp.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked: Option<bool> = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value)
                .ok_or_else(|| format!("an invalid Content-Length {:?}", show(h.value)))?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length headers".into());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked when it is the last coding applied.
            chunked = Some(
                tokens(h.value)
                    .last()
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")),
            );
        } else if h.name.eq_ignore_ascii_case("connection")
            && tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close"))
        {
            reusable = false;
        }
    }
    let framing = if head || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) | (None, None) => Framing::Close,
            (None, Some(n)) => Framing::Length(n),
        }
    };
    if framing == Framing::Close {
        reusable = false;
    }
    Ok(Response {
        status,
        framing,
        reusable,
    })
}

fn show(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// Writes the head the client gets for `resp`: status line and headers without the hop-by-hop ones
/// (and without `Content-Length` when the body is chunked); `close` adds `Connection: close`.
pub fn write_response(
    out: &mut Vec<u8>,
    resp: &httparse::Response<'_, '_>,
    framing: Framing,
    close: bool,
) {
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        resp.code.unwrap_or(502),
        resp.reason.unwrap_or("")
    );
    let hop_by_hop = hop_by_hop(resp.headers);
    for h in resp.headers.iter() {
        if hop_by_hop(h.name)
            || (framing == Framing::Chunked && h.name.eq_ignore_ascii_case("content-length"))
        {
            continue;
        }
        write_header(out, h.name, h.value);
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a whole plain-text answer of the DLX itself (`close`: and the connection ends after it).
pub fn write_answer(out: &mut Vec<u8>, status: http::StatusCode, text: &str, close: bool) {
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{}\r\n{text}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        text.len() + 1,
        if close { "connection: close\r\n" } else { "" },
    );
}

/// Where a chunked body ends (RFC 9112 §7.1), fed the bytes as they arrive: chunk sizes (with
/// extensions), data, the last chunk and the trailer section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// In a chunk-size line: the size so far and how many hex digits it had.
    Size(u64, u8),
    /// In a chunk extension, after the size.
    Extension(u64),
    /// After the size line's CR.
    SizeLf(u64),
    /// Data bytes left in the chunk.
    Data(u64),
    /// After a chunk's data: its CR.
    DataCr,
    /// After a chunk's data: its LF.
    DataLf,
    /// In the trailer section; `true` at the start of a line.
    Trailer(bool),
    /// After a CR in the trailer section; `true` when the line was empty.
    TrailerLf(bool),
    /// The body ended.
    Done,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked::Size(0, 0)
    }
}

impl Chunked {
    /// Advances over `bytes`; returns how many of them belong to the body (all, unless it ends
    /// within them). `Err` describes broken framing.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, String> {
        let mut i = 0;
        while i < bytes.len() {
            if let Chunked::Data(left) = *self {
                let take = left.min((bytes.len() - i) as u64);
                i += take as usize;
                *self = if take == left {
                    Chunked::DataCr
                } else {
                    Chunked::Data(left - take)
                };
                continue;
            }
            let b = bytes[i];
            *self = match (*self, b) {
                (Chunked::Done, _) => return Ok(i),
                (Chunked::Size(n, d), _) if b.is_ascii_hexdigit() => {
                    if d >= 15 {
                        return Err("a chunk size of more than 15 hex digits".into());
                    }
                    let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                    Chunked::Size(n * 16 + v, d + 1)
                }
                (Chunked::Size(n, d), b';' | b' ' | b'\t') if d > 0 => Chunked::Extension(n),
                (Chunked::Size(n, d), b'\r') if d > 0 => Chunked::SizeLf(n),
                (Chunked::Size(n, d), b'\n') if d > 0 => after_size(n),
                (Chunked::SizeLf(n), b'\n') => after_size(n),
                (Chunked::Extension(n), b'\r') => Chunked::SizeLf(n),
                (Chunked::Extension(n), b'\n') => after_size(n),
                (Chunked::Extension(n), _) => Chunked::Extension(n),
                (Chunked::DataCr, b'\r') => Chunked::DataLf,
                (Chunked::DataCr | Chunked::DataLf, b'\n') => Chunked::default(),
                (Chunked::Trailer(start), b'\r') => Chunked::TrailerLf(start),
                (Chunked::Trailer(true) | Chunked::TrailerLf(true), b'\n') => {
                    *self = Chunked::Done;
                    return Ok(i + 1);
                }
                (Chunked::Trailer(false) | Chunked::TrailerLf(false), b'\n') => {
                    Chunked::Trailer(true)
                }
                (Chunked::Trailer(_), _) => Chunked::Trailer(false),
                (state, b) => {
                    return Err(format!(
                        "broken chunked framing: byte {:?} in state {state:?}",
                        b as char
                    ));
                }
            };
            i += 1;
        }
        Ok(i)
    }

    /// Whether the body has ended.
    pub fn done(&self) -> bool {
        *self == Chunked::Done
    }
}

fn after_size(n: u64) -> Chunked {
    if n == 0 {
        Chunked::Trailer(true)
    } else {
        Chunked::Data(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_req(raw: &[u8]) -> (Option<Request>, Vec<u8>) {
        let headers = Box::leak(Box::new([httparse::EMPTY_HEADER; MAX_HEADERS]));
        let mut req = httparse::Request::new(headers);
        assert!(req.parse(raw).unwrap().is_complete());
        let mut out = Vec::new();
        write_request(&mut out, &req, "10.0.0.7", Some("x-dlx-target"));
        (classify(&req), out)
    }

    #[test]
    fn the_fast_path_takes_plain_requests_and_leaves_the_rest() {
        let (r, _) = parse_req(b"POST /v1/chat HTTP/1.1\r\nHost: llm.ns.svc:8000\r\nContent-Length: 12\r\nX-Forwarded-Host: api.example.com, edge\r\n\r\n");
        let r = r.expect("carried");
        assert_eq!(r.content_length, 12);
        assert!(r.keep_alive && !r.head && !r.idempotent);
        let (r, _) = parse_req(b"HEAD / HTTP/1.1\r\nConnection: Keep-Alive, Close\r\n\r\n");
        let r = r.expect("carried");
        assert!(r.head && r.idempotent && !r.keep_alive);
        for slow in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n",
            b"CONNECT pod:80 HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_req(slow).0, None, "{}", String::from_utf8_lossy(slow));
        }
    }

    #[test]
    fn the_names_of_a_target() {
        let raw = b"GET / HTTP/1.1\r\nHOST: llm.ns\r\nX-Forwarded-Host: api.example.com , edge\r\nX-DLX-Target: ns/llm\r\nHost: other\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(raw).unwrap().is_complete());
        let n = names(req.headers, Some("x-dlx-target"));
        assert_eq!(
            n,
            Names {
                target: Some("ns/llm"),
                host: Some("llm.ns"),
                forwarded_host: Some("api.example.com"),
            }
        );
        assert_eq!(names(req.headers, None).target, None);
    }

    #[test]
    fn the_request_head_loses_hop_by_hop_headers_and_gains_forwarded_for() {
        let (_, out) = parse_req(
            b"GET /v1/models?x=1 HTTP/1.1\r\nHost: llm.ns\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: 5\r\nX-Private: 1\r\nTE: trailers, gzip\r\nX-DLX-Target: ns/llm\r\nX-Forwarded-For: \r\nX-Forwarded-For: 203.0.113.9\r\nAuthorization: secret\r\n\r\n",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /v1/models?x=1 HTTP/1.1\r\nHost: llm.ns\r\nAuthorization: secret\r\nte: trailers\r\nx-forwarded-for: 203.0.113.9, 10.0.0.7\r\n\r\n"
        );
        let (_, out) = parse_req(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.1\r\nHost: a\r\nx-forwarded-for: 10.0.0.7\r\n\r\n"
        );
    }

    fn parse_resp(raw: &[u8], head: bool, close: bool) -> (Result<Response, String>, String) {
        let headers = Box::leak(Box::new([httparse::EMPTY_HEADER; MAX_HEADERS]));
        let mut resp = httparse::Response::new(headers);
        assert!(resp.parse(raw).unwrap().is_complete());
        let r = response(&resp, head);
        let mut out = Vec::new();
        if let Ok(r) = &r {
            write_response(&mut out, &resp, r.framing, close);
        }
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn response_framing_and_reuse() {
        let cases: [(&[u8], bool, Framing, bool); 8] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                Framing::Length(5),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                false,
                Framing::Close,
                false,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", false, Framing::Close, false),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                true,
                Framing::Empty,
                true,
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                false,
                Framing::Empty,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n",
                false,
                Framing::Length(5),
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                Framing::Length(5),
                false,
            ),
        ];
        for (raw, head, framing, reusable) in cases {
            let (r, _) = parse_resp(raw, head, false);
            let r = r.unwrap();
            assert_eq!(
                (r.framing, r.reusable),
                (framing, reusable),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let (r, _) = parse_resp(
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            false,
            false,
        );
        assert!(r.unwrap_err().contains("Content-Length"));
    }

    #[test]
    fn the_response_head_keeps_its_framing_and_says_close_when_asked() {
        let (_, out) = parse_resp(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n",
            false,
            true,
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn an_answer_is_a_whole_message() {
        let mut out = Vec::new();
        write_answer(
            &mut out,
            http::StatusCode::BAD_GATEWAY,
            "dlx: pod failed",
            true,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 16\r\nconnection: close\r\n\r\ndlx: pod failed\n"
        );
    }

    #[test]
    fn a_chunked_body_ends_where_it_ends_however_it_is_cut() {
        let body =
            b"5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let mut with_next = body.to_vec();
        with_next.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        for cut in 1..=body.len() {
            let mut c = Chunked::default();
            let mut taken = 0;
            for piece in with_next.chunks(cut) {
                taken += c.feed(piece).unwrap();
                if c.done() {
                    break;
                }
            }
            assert!(c.done(), "cut {cut}");
            assert_eq!(taken, body.len(), "cut {cut}");
        }
        let mut c = Chunked::default();
        assert_eq!(c.feed(b"0\r\n\r\n"), Ok(5));
        assert!(c.done());
        let mut c = Chunked::default();
        assert_eq!(c.feed(b"3\r\nabc\r\n"), Ok(8));
        assert!(!c.done());
        assert!(Chunked::default().feed(b"zz\r\n").is_err());
        assert!(Chunked::default().feed(b"3\r\nabcX").is_err());
        assert!(Chunked::default().feed(b"1234567890abcdef0\r\n").is_err());
    }
}
