//! The building blocks every endpoint chains: credentials, store handles and size-limited bodies.
//!
//! Each one rejects with the crate's [`Error`], so whatever fails first is what [`crate::error::recover`]
//! answers; the order they are chained in (credentials before the path id and the body) is the order of checks.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{StreamExt, future};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use warp::filters::BoxedFilter;
use warp::{Filter, Rejection, reject};

use crate::auth::Tokens;
use crate::config::Secret;
use crate::domain::Principal;
use crate::error::{Error, FieldError, Problem};
use crate::store::Store;

/// Largest request body accepted, counted in bytes actually received (chunked bodies included).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Time a client gets to send a whole body once its head has arrived; 64 KiB takes well under a second on
/// any working link, so only a client trickling bytes on purpose meets it.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The store.
pub fn with_db(store: &Store) -> BoxedFilter<(Store,)> {
    with(store.clone())
}

/// Any shared value a handler needs (the password hasher, the token issuer, the login limiter).
pub fn with<T: Clone + Send + Sync + 'static>(value: T) -> BoxedFilter<(T,)> {
    warp::any().map(move || value.clone()).boxed()
}

/// The client's address, settled by [`crate::server`] for each request as `TRUST_PROXY` defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The client's address (see [`ClientAddr`]); unspecified when the request did not come through the serve loop.
pub fn client_address() -> BoxedFilter<(IpAddr,)> {
    warp::ext::optional::<ClientAddr>()
        .map(|client: Option<ClientAddr>| {
            client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ClientAddr(ip)| ip)
        })
        .boxed()
}

/// Requires `X-API-Key` to equal `expected`, compared in constant time.
pub fn api_key(expected: &Arc<Secret>) -> BoxedFilter<()> {
    let expected = expected.clone();
    header("x-api-key")
        .and_then(move |sent: Option<String>| {
            let valid =
                sent.is_some_and(|sent| bool::from(sent.as_bytes().ct_eq(expected.expose())));
            future::ready(if valid {
                Ok(())
            } else {
                Err(reject::custom(Error::InvalidApiKey))
            })
        })
        .untuple_one()
        .boxed()
}

/// Requires `Authorization: Bearer <token>` with a valid token, and extracts whom it speaks for: a user, in one
/// of their sessions.
///
/// This is pure CPU work. Whether that session is still live (and so its user still exists) is checked by the
/// store in the same round trip as the request's own query: every store function taking a [`Principal`]
/// refuses one whose session has ended ([`StoreError::NoSuchUser`](crate::store::StoreError::NoSuchUser), a
/// 401), and a request refused for its input checks first (see `routes::checked`), so a token of an ended
/// session is a 401 wherever it is sent.
pub fn jwt_user(tokens: &Arc<Tokens>) -> BoxedFilter<(Principal,)> {
    let tokens = tokens.clone();
    header("authorization")
        .and_then(move |authorization: Option<String>| {
            let user_id = authorization
                .as_deref()
                .and_then(bearer_token)
                .and_then(|token| tokens.verify(token));
            future::ready(user_id.ok_or_else(|| reject::custom(Error::InvalidToken)))
        })
        .boxed()
}

/// The token of an `Authorization` header using the bearer scheme (whose name is case-insensitive).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A request header as text; a value that is not visible ASCII counts as absent, since no credential has one.
pub(crate) fn header(name: &'static str) -> BoxedFilter<(Option<String>,)> {
    warp::header::optional::<String>(name)
        .or_else(|_| future::ok::<_, Rejection>((None,)))
        .boxed()
}

/// The body, parsed as JSON into the raw request type `T`. Like FastAPI, a missing body, malformed JSON, or JSON
/// that is not an object is a 422, and so is a body declared as something other than JSON. Those problems are
/// handed to the handler rather than rejected here, so that on a protected route the credentials' user is
/// checked before the 422 is given.
pub fn json_body<T: DeserializeOwned + Send + 'static>()
-> BoxedFilter<(Result<T, Vec<FieldError>>,)> {
    header("content-type")
        .and(body_bytes())
        .and_then(|content_type: Option<String>, body: Bytes| {
            future::ready(match parse_json(content_type.as_deref(), &body) {
                Ok(parsed) => Ok(Ok(parsed)),
                Err(Error::Validation(errors)) => Ok(Err(errors)),
                Err(other) => Err(reject::custom(other)),
            })
        })
        .boxed()
}

/// The body's form fields, sent as `application/x-www-form-urlencoded` or `multipart/form-data` (FastAPI's form
/// parameters take both). Like FastAPI, a body declared as anything else, or one that does not parse, has no
/// fields, so the endpoint reports the ones it requires as missing.
pub fn form_body() -> BoxedFilter<(Fields,)> {
    header("content-type")
        .and(body_bytes())
        .then(|content_type: Option<String>, body: Bytes| async move {
            let content_type = content_type.unwrap_or_default();
            Fields(match media_type(&content_type).as_str() {
                "application/x-www-form-urlencoded" => form_urlencoded_pairs(&body),
                "multipart/form-data" => multipart_pairs(&content_type, body).await,
                _ => Vec::new(),
            })
        })
        .boxed()
}

/// The text fields of a multipart body (at most [`MAX_BODY_BYTES`], already read); a file part counts as text
/// when it is UTF-8, as Starlette reads a form field.
async fn multipart_pairs(content_type: &str, body: Bytes) -> Vec<(String, String)> {
    let Ok(boundary) = multer::parse_boundary(content_type) else {
        return Vec::new();
    };
    let mut multipart = multer::Multipart::new(
        futures_util::stream::once(future::ok::<_, std::convert::Infallible>(body)),
        boundary,
    );
    let mut pairs = Vec::new();
    while let Ok(Some(field)) = multipart.next_field().await {
        let Some(name) = field.name().map(str::to_owned) else {
            continue;
        };
        match field.text().await {
            Ok(value) => pairs.push((name, value)),
            Err(_) => return Vec::new(),
        }
    }
    pairs
}

/// The query string's fields (none when there is no query string).
pub fn query_fields() -> BoxedFilter<(Fields,)> {
    warp::query::<Vec<(String, String)>>().map(Fields).boxed()
}

/// The name–value pairs of a query string or a form, in the order sent.
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

impl From<Vec<(String, String)>> for Fields {
    fn from(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }
}

impl Fields {
    /// The last value sent for `name`: of a repeated field the last one counts, as in Starlette.
    pub fn last(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// Refuses any request that declares a `Content-Length` over [`MAX_BODY_BYTES`], before routing, whatever its
/// method or path (as FastAPI's size middleware does): nothing about such a request is worth reading.
pub fn declared_body_limit() -> BoxedFilter<()> {
    warp::header::optional::<u64>("content-length")
        .and_then(|declared: Option<u64>| {
            let too_large = declared.is_some_and(|len| len > MAX_BODY_BYTES as u64);
            future::ready(if too_large {
                Err(reject::custom(Error::PayloadTooLarge))
            } else {
                Ok(())
            })
        })
        .untuple_one()
        .boxed()
}

/// The body, at most [`MAX_BODY_BYTES`], counted as it arrives: a chunked body (no `Content-Length`) is refused
/// as soon as it goes over. Declared lengths over the limit never get here (see [`declared_body_limit`]).
fn body_bytes() -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(read_limited)
}

async fn read_limited<S, B>(declared: Option<u64>, stream: S) -> Result<Bytes, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let capacity = declared.map_or(0, |len| len.min(MAX_BODY_BYTES as u64) as usize);
    let read = async move {
        let mut body = BytesMut::with_capacity(capacity);
        let mut stream = std::pin::pin!(stream);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                log::debug!("request body could not be read: {e}");
                Error::MalformedBody
            })?;
            if body.len() + chunk.remaining() > MAX_BODY_BYTES {
                return Err(Error::PayloadTooLarge);
            }
            body.put(chunk);
        }
        Ok(body.freeze())
    };
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(body) => body.map_err(reject::custom),
        Err(_) => Err(reject::custom(Error::RequestTimeout)),
    }
}

fn parse_json<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T, Error> {
    let whole_body = |problem| Error::Validation(vec![FieldError::body(None, problem)]);
    if body.is_empty() {
        return Err(whole_body(Problem::Missing));
    }
    if !content_type.is_none_or(is_json) {
        return Err(whole_body(Problem::NotAnObject));
    }
    // An object first: a repeated member keeps its last value (as Python's json module does), and a JSON array
    // cannot be read positionally into the raw type's fields.
    let object: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            whole_body(Problem::NotAnObject)
        } else {
            malformed(body, &e)
        }
    })?;
    // The raw request types take members of any JSON type, so this only fails if one of them is declared wrong.
    T::deserialize(Value::Object(object))
        .map_err(|e| Error::Internal(format!("raw body type refused an object: {e}")))
}

/// A 422 for malformed JSON, located at the byte where parsing stopped.
fn malformed(body: &[u8], err: &serde_json::Error) -> Error {
    let line_start: usize = body
        .split(|b| *b == b'\n')
        .take(err.line().saturating_sub(1))
        .map(|line| line.len() + 1)
        .sum();
    let position = (line_start + err.column().saturating_sub(1)).min(body.len());
    Error::Validation(vec![FieldError::malformed_json(position)])
}

/// `application/json`, or any `application/*+json`, parameters aside.
fn is_json(content_type: &str) -> bool {
    let media_type = media_type(content_type);
    media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

/// The media type of a `Content-Type` value, lowercased, without parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Basic abc"), None);
    }

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }

    #[test]
    fn form_fields_decode_and_the_last_value_wins() {
        let form = Fields(form_urlencoded_pairs(
            b"username=a&username=b&password=&scope=x+y%21",
        ));
        assert_eq!(form.last("username"), Some("b"));
        assert_eq!(form.last("password"), Some(""));
        assert_eq!(form.last("scope"), Some("x y!"));
        assert_eq!(form.last("grant_type"), None);
    }

    #[test]
    fn a_repeated_member_keeps_its_last_value_and_arrays_are_not_objects() {
        let object: Map<String, Value> = parse_json(None, br#"{"a": 1, "a": 2}"#).unwrap();
        assert_eq!(object["a"], 2);
        let Err(Error::Validation(errors)) = parse_json::<Map<String, Value>>(None, b"[1, 2]")
        else {
            panic!("an array is not an object")
        };
        assert_eq!(errors, vec![FieldError::body(None, Problem::NotAnObject)]);
    }

    #[test]
    fn malformed_json_is_located() {
        let body = b"{\n  \"title\": oops}";
        let err = serde_json::from_slice::<Value>(body).unwrap_err();
        let Error::Validation(errors) = malformed(body, &err) else {
            panic!("not a validation error")
        };
        assert_eq!(errors, vec![FieldError::malformed_json(13)]);
    }

    #[tokio::test]
    async fn multipart_forms_give_their_fields() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\ns3cret pass\r\n--XyZ--\r\n";
        let form =
            Fields(multipart_pairs("multipart/form-data; boundary=XyZ", Bytes::from(body)).await);
        assert_eq!(form.last("username"), Some("alice"));
        assert_eq!(form.last("password"), Some("s3cret pass"));
        let broken = multipart_pairs(
            "multipart/form-data; boundary=XyZ",
            Bytes::from("--XyZ\r\nnonsense"),
        )
        .await;
        assert!(broken.is_empty());
        assert!(
            multipart_pairs("multipart/form-data", Bytes::from(body))
                .await
                .is_empty()
        );
    }

    proptest::proptest! {
        #[test]
        fn any_body_is_parsed_or_refused_without_panicking(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_json::<Map<String, Value>>(None, &body);
            let _ = Fields(form_urlencoded_pairs(&body)).last("username");
        }

        #[test]
        fn json_objects_are_accepted_whole(object in proptest::collection::btree_map("\\PC{0,12}", "\\PC{0,12}", 0..8)) {
            let body = serde_json::to_vec(&object).unwrap();
            let parsed: Map<String, Value> = parse_json(Some("application/json"), &body).unwrap();
            proptest::prop_assert_eq!(parsed.len(), object.len());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_finishes_times_out() {
        let never = futures_util::stream::pending::<Result<Bytes, warp::Error>>();
        let rejection = read_limited(Some(10), never).await.unwrap_err();
        assert!(matches!(
            rejection.find::<Error>(),
            Some(Error::RequestTimeout)
        ));
    }
}
