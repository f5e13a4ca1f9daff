//! Path and query extractors whose every rejection is a problem (API.md, Conventions): a path
//! id that does not parse is 404 `not_found` (no such resource), a query parameter that does
//! not parse, is missing or is repeated is 422 `validation_failed` naming it. axum's own answer
//! 400 in text/plain.

use std::collections::HashSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Path parameters; one that does not parse answers 404.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(_) => Err(ApiError::not_found(format!(
                "no resource at {}",
                parts.uri.path()
            ))),
        }
    }
}

/// Query parameters; a repeated, missing or malformed one answers 422 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or("")).map(Query)
    }
}

/// Parses a query string into `T`, refusing repeated names.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let mut seen = HashSet::new();
    for (name, _) in form_urlencoded::parse(query.as_bytes()) {
        if !seen.insert(name.clone()) {
            return Err(ApiError::validation(
                name.into_owned(),
                "is given more than once",
            ));
        }
    }
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        let missing = crate::json::missing_field_name(&message).map(str::to_owned);
        match (missing, path.as_str()) {
            (Some(field), _) => ApiError::validation(field, "is required"),
            (None, ".") => ApiError::validation("query", message),
            (None, field) => ApiError::validation(field, message),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "only parsed")]
    struct Q {
        month: Option<String>,
        year: Option<i32>,
        limit: Option<u32>,
    }

    #[test]
    fn bad_repeated_and_malformed_parameters_are_named() {
        let cases = [
            ("year=20x6", "year", "does not parse"),
            ("limit=-1", "limit", "negative"),
            ("month=2026-01&month=2026-02", "month", "repeated"),
            ("year=2026&year=2026", "year", "repeated with one value"),
        ];
        for (query, field, why) in cases {
            let err = parse_query::<Q>(query).unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::ValidationFailed, "{why}");
            assert!(err.detail().starts_with(field), "{why}: {}", err.detail());
        }
        assert!(parse_query::<Q>("month=2026-01&year=2026&limit=5").is_ok());
        assert!(parse_query::<Q>("").is_ok());
    }
}
