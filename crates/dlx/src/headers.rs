//! Header rules of a transparent proxy (pure): what describes one connection and must not be
//! forwarded (RFC 9110 §7.6.1), what an upgrade keeps, and `X-Forwarded-For`.
//!
//! Everything else passes untouched: `Host`, `X-Forwarded-Host`/`-Proto`/`-Port`, `Content-Length`,
//! authorization, cookies. Framing (`Transfer-Encoding`) is redone by hyper on each side.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Copies a request's URI and header values out of the buffer hyper read them into.
///
/// Hyper hands them out as slices of the connection's read buffer (HTTP/1.1: 8 KiB). While any slice
/// lives, hyper cannot reuse that buffer and allocates a new one for its next read — which it does at
/// once, to watch the connection for EOF while the request is served or held. Called when hyper hands
/// the request over (before that read), the buffer stays hyper's only one: a held request costs its own
/// bytes, and a keep-alive connection reuses one buffer instead of allocating one per request.
pub fn detach<B>(req: &mut http::Request<B>) {
    if let Ok(uri) = http::Uri::try_from(req.uri().to_string()) {
        *req.uri_mut() = uri;
    }
    for v in req.headers_mut().values_mut() {
        if let Ok(mut copy) = HeaderValue::from_bytes(v.as_bytes()) {
            copy.set_sensitive(v.is_sensitive());
            *v = copy;
        }
    }
}

/// Headers that only describe the connection they came on (parsed once: removing by `&str` would
/// parse the name on every message).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether the message asks to switch protocols (`Connection: upgrade` with an `Upgrade` header).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_tokens(headers).any(|t| t == "upgrade")
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers. With `upgrade`, `Connection: upgrade` and `Upgrade` stay (the next hop
/// must see the switch). `TE: trailers` stays: gRPC requires it end to end.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<String> = if headers.contains_key(header::CONNECTION) {
        connection_tokens(headers).collect()
    } else {
        Vec::new()
    };
    let te_trailers = headers.get_all(header::TE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("trailers"))
    });
    for token in &named {
        if upgrade && token == "upgrade" {
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Appends the client's address to `X-Forwarded-For` (creating it), as proxies do.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    let name = HeaderName::from_static("x-forwarded-for");
    let value = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => format!("{prior}, {client}"),
        _ => client.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_go_and_the_rest_stays() {
        let mut h = map(&[
            ("host", "llm.ns.svc.cluster.local"),
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
            ("x-forwarded-host", "api.example.com"),
            ("x-forwarded-proto", "https"),
            ("content-length", "12"),
            ("upgrade", "websocket"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "content-length",
                "host",
                "x-forwarded-host",
                "x-forwarded-proto"
            ]
        );
    }

    #[test]
    fn an_upgrade_keeps_its_switch_and_grpc_keeps_te_trailers() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "abc"),
        ]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["sec-websocket-key"], "abc");
        assert!(!is_upgrade(&map(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(&map(&[("connection", "upgrade")])));

        let mut g = map(&[("te", "trailers"), ("content-type", "application/grpc")]);
        strip_hop_by_hop(&mut g, false);
        assert_eq!(g["te"], "trailers");
    }

    #[test]
    fn forwarded_for_is_appended() {
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, ip);
        assert_eq!(h["x-forwarded-for"], "10.0.0.7");
        let mut h = map(&[("x-forwarded-for", "203.0.113.9")]);
        append_forwarded_for(&mut h, ip);
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 10.0.0.7");
    }

    #[test]
    fn detach_keeps_uri_and_every_value() {
        let head = bytes::Bytes::from_static(b"/v1/chat?x=1 a b secret");
        let mut req = http::Request::new(());
        *req.uri_mut() = http::Uri::from_maybe_shared(head.slice(0..12)).unwrap();
        let h = req.headers_mut();
        h.append(
            "x-a",
            HeaderValue::from_maybe_shared(head.slice(13..14)).unwrap(),
        );
        h.append(
            "x-a",
            HeaderValue::from_maybe_shared(head.slice(15..16)).unwrap(),
        );
        let mut secret = HeaderValue::from_maybe_shared(head.slice(17..23)).unwrap();
        secret.set_sensitive(true);
        h.insert(header::AUTHORIZATION, secret);
        detach(&mut req);
        assert_eq!(req.uri(), "/v1/chat?x=1");
        let a: Vec<_> = req.headers().get_all("x-a").iter().collect();
        assert_eq!(a, ["a", "b"]);
        assert_eq!(req.headers()[header::AUTHORIZATION], "secret");
        assert!(req.headers()[header::AUTHORIZATION].is_sensitive());
    }
}
