//! Paged lists (API.md, Conventions): `limit` (1–1000, default 1000) and `cursor`; when more
//! rows follow, a `Link: <URL>; rel="next"` header (RFC 8288) whose URL fetches the next page.
//! Pages are keyset pages (`where (created_at, id) > cursor`), never OFFSET, so rows inserted
//! while a client pages neither repeat nor shift what it has not read yet.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;

/// The most rows one page holds.
pub const MAX_LIMIT: i64 = 1000;

/// A page request: how many rows, and after which row.
#[derive(Debug, Clone)]
pub struct Page {
    /// Rows wanted (1–1000).
    pub limit: i64,
    /// The last row of the previous page, as `(created_at, id)`.
    pub after: Option<(OffsetDateTime, Uuid)>,
    uri: Uri,
}

#[derive(serde::Deserialize)]
struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let q: PageQuery = crate::extract::parse_query(parts.uri.query().unwrap_or(""))?;
        let limit = match q.limit {
            None => MAX_LIMIT,
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n) && text.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    ApiError::validation("limit", "must be a whole number from 1 to 1000")
                })?,
        };
        let after = q.cursor.map(|c| decode(&c)).transpose()?;
        Ok(Page {
            limit,
            after,
            uri: parts.uri.clone(),
        })
    }
}

fn decode(cursor: &str) -> Result<(OffsetDateTime, Uuid), ApiError> {
    let bad = || ApiError::validation("cursor", "is not a cursor this list gave");
    let (micros, id) = cursor.split_once('.').ok_or_else(bad)?;
    let micros: i128 = micros.parse().map_err(|_| bad())?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).map_err(|_| bad())?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

fn encode(at: OffsetDateTime, id: Uuid) -> String {
    format!("{}.{id}", at.unix_timestamp_nanos() / 1000)
}

impl Page {
    /// The first page of the longest size, for a list a response embeds whole (a firm's at most
    /// ten files in its detail).
    pub fn everything() -> Page {
        Page {
            limit: MAX_LIMIT,
            after: None,
            uri: Uri::from_static("/"),
        }
    }

    /// The `(created_at, id)` to start after: the cursor's, or before every row.
    pub fn after_or_start(&self) -> (OffsetDateTime, Uuid) {
        self.after.unwrap_or((
            OffsetDateTime::UNIX_EPOCH - time::Duration::days(365_000),
            Uuid::nil(),
        ))
    }

    /// How many rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts `rows` (fetched with [`Page::fetch`], in `(created_at, id)` order) to the page and
    /// answers the headers: `Link: rel="next"` when more follow.
    pub fn finish<T>(
        &self,
        rows: &mut Vec<T>,
        key: impl Fn(&T) -> (OffsetDateTime, Uuid),
    ) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if rows.len() as i64 > self.limit {
            rows.truncate(self.limit as usize);
            if let Some(last) = rows.last() {
                let (at, id) = key(last);
                if let Ok(value) = HeaderValue::from_str(&format!(
                    "<{}>; rel=\"next\"",
                    self.next_url(&encode(at, id))
                )) {
                    headers.insert(header::LINK, value);
                }
            }
        }
        headers
    }

    /// The request's own path and query with `cursor` set to `cursor`.
    fn next_url(&self, cursor: &str) -> String {
        let mut query: Vec<(String, String)> =
            form_urlencoded::parse(self.uri.query().unwrap_or("").as_bytes())
                .filter(|(k, _)| k != "cursor")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        query.push(("cursor".to_owned(), cursor.to_owned()));
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        format!("{}?{query}", self.uri.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let at = time::macros::datetime!(2026-12-01 10:00:00.123456 UTC);
        let id = Uuid::now_v7();
        assert_eq!(decode(&encode(at, id)).unwrap(), (at, id));
        for bad in ["", "x", "1.y", "abc.00000000-0000-0000-0000-000000000000"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
