//! The JSON body extractor every handler uses, so every bad body gets the same clear answer.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiError, ErrorCode};

/// The largest request body accepted (API.md: "Request bodies over 64 KiB → 413").
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON request or response body.
///
/// As an extractor it answers, in problem+json: 413 `payload_too_large` past 64 KiB, 400
/// `malformed_request` for a body that is not JSON (or not an object where one is expected, or
/// not declared as JSON), and 422 `validation_failed` naming the field for a missing field or a
/// value of the wrong type or form (a JSON number where money is expected, a bad USCC).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&req) {
            return Err(ApiError::new(
                ErrorCode::MalformedRequest,
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = read_body(req).await?;
        parse_json(&bytes).map(Json)
    }
}

/// How long a body may take to arrive once its headers have: a client that trickles a body
/// (slowloris) is answered and its connection freed.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a whole body up to [`MAX_BODY_BYTES`] within [`BODY_READ_TIMEOUT`]; shared by the JSON
/// and CSV extractors.
pub async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    read_body_within(req, MAX_BODY_BYTES, BODY_READ_TIMEOUT).await
}

/// The one endpoint whose body may pass 64 KiB: a firm's evidence file (API.md, at most 5 MiB).
pub const EVIDENCE_PATH: &str = "/api/portal/evidence";

/// The largest evidence file (API.md: "at most 5 MiB").
pub const MAX_EVIDENCE_BYTES: usize = 5 * 1024 * 1024;

/// How long an evidence file may take to arrive: 5 MiB from a phone on a slow uplink.
pub const EVIDENCE_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The largest body `path` accepts: [`MAX_EVIDENCE_BYTES`] for the evidence upload,
/// [`MAX_BODY_BYTES`] for everything else.
pub fn body_limit(path: &str) -> usize {
    if path == EVIDENCE_PATH {
        MAX_EVIDENCE_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// Reads a whole body up to `max` bytes within `timeout`: 413 `payload_too_large` past it, 400
/// when it does not arrive in time.
pub async fn read_body_within(
    req: Request,
    max: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let read = axum::body::to_bytes(req.into_body(), max);
    let Ok(read) = tokio::time::timeout(timeout, read).await else {
        return Err(ApiError::new(
            ErrorCode::MalformedRequest,
            format!(
                "the request body did not arrive within {} s",
                timeout.as_secs()
            ),
        ));
    };
    read.map_err(|err| {
        let inner = err.into_inner();
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
        while let Some(e) = source {
            if e.is::<http_body_util::LengthLimitError>() {
                return too_large_for(max);
            }
            source = e.source();
        }
        ApiError::new(
            ErrorCode::MalformedRequest,
            "the request body could not be read",
        )
    })
}

/// `payload_too_large` with the limit in the detail.
pub fn too_large() -> ApiError {
    too_large_for(MAX_BODY_BYTES)
}

/// `payload_too_large` naming the limit `max` that was passed.
pub fn too_large_for(max: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("request bodies are limited to {max} bytes here"),
    )
}

fn has_json_content_type(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Deserialises a body, sorting failures into 400 (not JSON, or not a JSON object: every request
/// body of the API is one) and 422 (an object of the wrong shape, naming the field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice::<Strict>(bytes)
        .map(|strict| strict.0)
        .map_err(|err| {
            ApiError::new(
                ErrorCode::MalformedRequest,
                format!("the body is not valid JSON: {err}"),
            )
        })?;
    if !value.is_object() {
        return Err(ApiError::new(
            ErrorCode::MalformedRequest,
            "the body must be a JSON object",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = strip_position(&err.into_inner().to_string());
        match missing_field_name(&message) {
            Some(field) if path == "." => ApiError::validation(field, "is required"),
            Some(field) => ApiError::validation(format!("{path}.{field}"), "is required"),
            None if path == "." => ApiError::validation("body", message),
            None => ApiError::validation(path, message),
        }
    })
}

/// A JSON value read with every object's keys checked: a key given twice is an error (API.md:
/// "a JSON object with the same key twice" is malformed), where serde_json keeps the last.
struct Strict(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if object.insert(key.clone(), value).is_some() {
                return Err(serde::de::Error::custom(format!(
                    "the key \"{key}\" is given twice"
                )));
            }
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// The field a serde "missing field" message names.
pub(crate) fn missing_field_name(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// serde_json appends " at line 1 column 42", which means nothing to a form's user.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(idx) => message[..idx].to_owned(),
        None => message.to_owned(),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod strict_tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[expect(dead_code, reason = "only parsed")]
        a: serde_json::Value,
    }

    #[test]
    fn a_key_given_twice_is_malformed_at_any_depth() {
        for body in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"a": {"b": 1, "b": 1}}"#,
            r#"{"a": [{"c": true, "c": false}]}"#,
        ] {
            let err = parse_json::<Body>(body.as_bytes()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::MalformedRequest, "{body}");
        }
        assert!(parse_json::<Body>(br#"{"a": {"b": [1, 2.5, null, "x"]}}"#).is_ok());
    }
}
