//! What the serve loop settles about each request before the API sees it: who the client is (`TRUST_PROXY`),
//! whether its framing is one the API accepts, the percent-decoded path, and the access-log line.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, percent_encode};
use warp::http::uri::PathAndQuery;
use warp::http::{HeaderMap, Request, StatusCode, Uri, header};

use crate::config::TrustProxy;

/// The client's address as `trust` defines it. A header that is missing or does not hold an address leaves
/// the socket peer (the proxy): every such request then shares one address, which errs towards limiting.
pub(super) fn client_address(trust: &TrustProxy, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let named = match trust {
        TrustProxy::No => return peer,
        TrustProxy::LastForwardedFor => last_forwarded_for(headers),
        // The last value: a proxy that adds its header rather than replacing it puts its own after the client's.
        TrustProxy::Header(name) => headers
            .get_all(name.as_str())
            .iter()
            .next_back()
            .and_then(|value| value.to_str().ok())
            .and_then(address),
    };
    named.unwrap_or(peer)
}

/// The last entry of the last `X-Forwarded-For` header: the one the trusted proxy appended. (A proxy that
/// appends a header of its own instead of extending the client's still puts it last.)
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?
        .to_str()
        .ok()?;
    address(value.rsplit(',').next()?)
}

/// An address, with or without a port (`203.0.113.7`, `203.0.113.7:4711`, `[2001:db8::1]:443`).
fn address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
}

/// Why the serve loop answers a request itself.
pub(super) fn refusal<B>(request: &Request<B>) -> Option<StatusCode> {
    // hyper takes any coding list that ends in `chunked` ("gzip, chunked") and reads the body as plain chunked,
    // which is a guess about what the sender meant; a proxy in front may guess otherwise (request smuggling).
    // The API accepts no coding but chunked, so anything else is refused.
    // (A `Content-Length` beside it never gets here: hyper drops it, reads the body as chunked and closes the
    // connection after the answer, as RFC 9112 §6.1 requires.)
    let mut codings = request.headers().get_all(header::TRANSFER_ENCODING).iter();
    let refused = codings.next().is_some_and(|coding| {
        !coding
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"chunked")
            || codings.next().is_some()
    });
    refused.then_some(StatusCode::BAD_REQUEST)
}

/// Bytes that stay percent-encoded in a decoded path: those a URI path cannot hold, and `%` itself, so that
/// `%2531` decodes once, to `%31`, never twice.
const KEEP_ENCODED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(0x7f);

/// The URI with its path percent-decoded, as Starlette routes (`/tasks/%31` is `/tasks/1`, `/tasks%2F1` too);
/// `None` when the path has nothing to decode.
pub(super) fn decoded_uri(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    if !path.contains('%') {
        return None;
    }
    let bytes: Vec<u8> = percent_decode_str(path).collect();
    let mut decoded = percent_encode(&bytes, KEEP_ENCODED).to_string();
    if let Some(query) = uri.query() {
        decoded.push('?');
        decoded.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(decoded).ok()?);
    Uri::from_parts(parts).ok()
}

/// One access-log line: client, request line, status, referer, user agent, duration. Everything the client
/// chose is escaped, so no quote, control character or line break it sends can forge a field or a line.
pub(super) struct AccessLine {
    client: IpAddr,
    method: String,
    path: String,
    version: warp::http::Version,
    referer: String,
    user_agent: String,
}

impl AccessLine {
    pub(super) fn new<B>(client: IpAddr, request: &Request<B>) -> Self {
        let header = |name| {
            request
                .headers()
                .get(name)
                .map_or_else(|| "-".to_owned(), |v| escaped(v.as_bytes()))
        };
        Self {
            client,
            method: escaped(request.method().as_str().as_bytes()),
            path: escaped(request.uri().path().as_bytes()),
            version: request.version(),
            referer: header(header::REFERER),
            user_agent: header(header::USER_AGENT),
        }
    }

    pub(super) fn log(&self, status: StatusCode, elapsed: Duration) {
        log::info!(
            target: "tasky::access",
            "{self} {} \"{}\" \"{}\" {elapsed:?}",
            status.as_u16(),
            self.referer,
            self.user_agent
        );
    }
}

impl fmt::Display for AccessLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} \"{} {} {:?}\"",
            self.client, self.method, self.path, self.version
        )
    }
}

/// Printable ASCII as it is, except `"` and `\`; every other byte as `\xNN`.
fn escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (b.is_ascii_graphic() || b == b' ') && b != b'"' && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use warp::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn without_trust_the_peer_is_the_client_whatever_the_headers_say() {
        let sent = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-real-ip", "203.0.113.8"),
        ]);
        assert_eq!(client_address(&TrustProxy::No, PEER, &sent), PEER);
    }

    #[test]
    fn trusting_forwarded_for_takes_the_entry_the_proxy_appended() {
        let trust = TrustProxy::LastForwardedFor;
        let appended = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.9")]);
        assert_eq!(
            client_address(&trust, PEER, &appended),
            "198.51.100.9".parse::<IpAddr>().unwrap()
        );
        let separate = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "[2001:db8::1]:443"),
        ]);
        assert_eq!(
            client_address(&trust, PEER, &separate),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        let mapped = headers(&[("x-forwarded-for", "::ffff:198.51.100.9")]);
        assert_eq!(
            client_address(&trust, PEER, &mapped),
            "198.51.100.9".parse::<IpAddr>().unwrap()
        );
        for unusable in ["", "unknown", "1.2.3.4, garbage"] {
            let sent = headers(&[("x-forwarded-for", unusable)]);
            assert_eq!(client_address(&trust, PEER, &sent), PEER, "{unusable:?}");
        }
        assert_eq!(client_address(&trust, PEER, &HeaderMap::new()), PEER);
    }

    #[test]
    fn trusting_a_header_takes_that_header_only() {
        let trust = TrustProxy::Header("x-real-ip".into());
        let sent = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-real-ip", "198.51.100.9"),
        ]);
        assert_eq!(
            client_address(&trust, PEER, &sent),
            "198.51.100.9".parse::<IpAddr>().unwrap()
        );
        let missing = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_address(&trust, PEER, &missing), PEER);
        let added = headers(&[("x-real-ip", "203.0.113.66"), ("x-real-ip", "198.51.100.9")]);
        assert_eq!(
            client_address(&trust, PEER, &added),
            "198.51.100.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn only_plain_chunked_is_accepted() {
        let with = |codings: &[&str]| {
            let mut request = Request::new(());
            for coding in codings {
                request.headers_mut().append(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_str(coding).unwrap(),
                );
            }
            refusal(&request)
        };
        assert_eq!(with(&[]), None);
        assert_eq!(with(&["chunked"]), None);
        assert_eq!(with(&["Chunked "]), None);
        for refused in [
            &["gzip, chunked"][..],
            &["chunked", "chunked"],
            &["identity"],
        ] {
            assert_eq!(with(refused), Some(StatusCode::BAD_REQUEST), "{refused:?}");
        }
    }

    #[test]
    fn paths_are_decoded_once_and_stay_valid() {
        let decode = |uri: &str| decoded_uri(&uri.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(decode("/tasks/1"), None);
        assert_eq!(decode("/tasks/%31").as_deref(), Some("/tasks/1"));
        assert_eq!(
            decode("/%74asks%2F7?status=pending").as_deref(),
            Some("/tasks/7?status=pending")
        );
        assert_eq!(decode("/tasks/%2531").as_deref(), Some("/tasks/%2531"));
        assert_eq!(
            decode("/tasks/%20%3F%23").as_deref(),
            Some("/tasks/%20%3F%23")
        );
        assert_eq!(decode("/tasks/%FF%zz").as_deref(), Some("/tasks/%FF%25zz"));
    }

    #[test]
    fn log_fields_cannot_be_forged() {
        assert_eq!(escaped(b"curl/8.0"), "curl/8.0");
        assert_eq!(
            escaped(b"x\" 200 \"-\r\n127.0.0.1 \\"),
            "x\\x22 200 \\x22-\\x0d\\x0a127.0.0.1 \\x5c"
        );
        assert_eq!(escaped("é".as_bytes()), "\\xc3\\xa9");
    }
}
