//! Reading a target name out of a request header (pure).
//!
//! A request names the Service it was meant for in `Host` (or, for HTTP/2, the `:authority`), in
//! `X-Forwarded-Host` when an ingress forwarded it, or in the configured target header. All three use
//! the forms a client inside the cluster would write:
//!
//! | form | example |
//! | --- | --- |
//! | `svc` (namespace unknown: resolved if only one namespace has a handed-over Service of that name) | `llm` |
//! | `svc.ns` | `llm.team-a` |
//! | `svc.ns.svc` and `svc.ns.svc.<cluster domain>` | `llm.team-a.svc.cluster.local` |
//! | `ns/svc` (the target header only, a convenience for curl) | `team-a/llm` |
//! | the Service's ClusterIP | `10.96.12.7` |
//!
//! each with an optional `:port`. Anything else (`api.example.com`) names no Service.

use std::net::IpAddr;

/// What a header value names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Name {
    /// A Service by name.
    Service {
        /// The Service's name.
        service: String,
        /// Its namespace, when the value says.
        namespace: Option<String>,
        /// The port, when the value says.
        port: Option<u16>,
    },
    /// A Service by its ClusterIP.
    Ip {
        /// The ClusterIP.
        ip: IpAddr,
        /// The port, when the value says.
        port: Option<u16>,
    },
}

impl Name {
    /// The port the value named, if any.
    pub fn port(&self) -> Option<u16> {
        match self {
            Name::Service { port, .. } | Name::Ip { port, .. } => *port,
        }
    }
}

/// Parses a `Host`-like value (`svc.ns.svc.cluster.local:8000`, `10.96.0.12`, `[fd00::1]:80`, or
/// `ns/svc[:port]`); `None` when it names no Service.
pub fn parse(value: &str) -> Option<Name> {
    let value = value.trim();
    let (host, port) = split_port(value)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(Name::Ip { ip, port });
    }
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if let Some((ns, svc)) = host.split_once('/') {
        return (is_label(ns) && is_label(svc)).then(|| Name::Service {
            service: svc.to_string(),
            namespace: Some(ns.to_string()),
            port,
        });
    }
    let labels: Vec<&str> = host.split('.').collect();
    if !labels.iter().all(|l| is_label(l)) {
        return None;
    }
    let (service, namespace) = match labels.as_slice() {
        [svc] => (svc, None),
        [svc, ns] => (svc, Some(ns)),
        [svc, ns, "svc", ..] => (svc, Some(ns)),
        _ => return None,
    };
    Some(Name::Service {
        service: service.to_string(),
        namespace: namespace.map(|n| n.to_string()),
        port,
    })
}

/// Splits `host[:port]` (with `[v6]:port` and bare IPv6); `None` when the port is not a number.
fn split_port(value: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    // A bare IPv6 address has several colons and no port.
    if value.matches(':').count() > 1 {
        return Some((value, None));
    }
    match value.rsplit_once(':') {
        Some((host, p)) => Some((host, Some(p.parse().ok()?))),
        None => Some((value, None)),
    }
}

/// A DNS label as Kubernetes names use them: 1–63 of `[a-z0-9-]`, not starting or ending with `-`.
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(service: &str, namespace: Option<&str>, port: Option<u16>) -> Option<Name> {
        Some(Name::Service {
            service: service.into(),
            namespace: namespace.map(Into::into),
            port,
        })
    }

    #[test]
    fn cluster_dns_forms() {
        assert_eq!(
            parse("llm.team-a.svc.cluster.local"),
            svc("llm", Some("team-a"), None)
        );
        assert_eq!(
            parse("llm.team-a.svc.cluster.local:8000"),
            svc("llm", Some("team-a"), Some(8000))
        );
        assert_eq!(
            parse("llm.team-a.svc.cluster.local.:80"),
            svc("llm", Some("team-a"), Some(80))
        );
        assert_eq!(
            parse("llm.team-a.svc.corp.example"),
            svc("llm", Some("team-a"), None)
        );
        assert_eq!(parse("llm.team-a.svc"), svc("llm", Some("team-a"), None));
        assert_eq!(parse("llm.team-a:81"), svc("llm", Some("team-a"), Some(81)));
        assert_eq!(parse("llm"), svc("llm", None, None));
        assert_eq!(parse(" LLM:8080 "), svc("llm", None, Some(8080)));
    }

    #[test]
    fn header_form_with_a_slash() {
        assert_eq!(parse("team-a/llm"), svc("llm", Some("team-a"), None));
        assert_eq!(parse("team-a/llm:80"), svc("llm", Some("team-a"), Some(80)));
        assert_eq!(parse("team-a/"), None);
        assert_eq!(parse("a/b/c"), None);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse("10.96.0.12:80"),
            Some(Name::Ip {
                ip: "10.96.0.12".parse().unwrap(),
                port: Some(80)
            })
        );
        assert_eq!(
            parse("[fd00::1]:8000"),
            Some(Name::Ip {
                ip: "fd00::1".parse().unwrap(),
                port: Some(8000)
            })
        );
        assert_eq!(
            parse("fd00::1"),
            Some(Name::Ip {
                ip: "fd00::1".parse().unwrap(),
                port: None
            })
        );
        assert_eq!(parse("[fd00::1]x"), None);
    }

    #[test]
    fn names_no_service() {
        for v in [
            "",
            "api.example.com",
            "a.b.c",
            "llm:port",
            "llm:99999",
            "-llm.ns",
            "llm_1.ns",
            "x.ns.svc:",
        ] {
            assert_eq!(parse(v), None, "{v:?}");
        }
        assert!(is_label(&"a".repeat(63)));
        assert!(!is_label(&"a".repeat(64)));
    }
}
