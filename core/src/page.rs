//! Paged lists (API.md, Conventions): `limit` (1–1000, default 1000) and `cursor`; when more
//! rows follow, a `Link: <URL>; rel="next"` header (RFC 8288) whose URL fetches the next page.
//! Pages are keyset pages (`where (created_at, id) > cursor`, or whatever the list's order is),
//! never OFFSET, so rows inserted while a client pages neither repeat nor shift what it has not
//! read yet. The cursor is the last row's sort key, written by [`Key`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;

/// The most rows one page holds.
pub const MAX_LIMIT: i64 = 1000;

/// Before every row a list ordered by `(timestamp, id)` holds.
pub const EARLIEST: (OffsetDateTime, Uuid) =
    (time::macros::datetime!(1900-01-01 00:00 UTC), Uuid::nil());

/// After every row a list ordered by `(timestamp, id)` holds (for lists newest first).
pub const LATEST: (OffsetDateTime, Uuid) =
    (time::macros::datetime!(9999-12-31 00:00 UTC), Uuid::max());

/// A list's sort key, as a cursor: the last row of a page, written into the next page's URL.
pub trait Key: Sized {
    /// The cursor text.
    fn encode(&self) -> String;
    /// The key back from a cursor this list gave; `None` for anything else.
    fn decode(text: &str) -> Option<Self>;
    /// A key before every row of a list in ascending order.
    fn first() -> Self;
}

impl Key for (OffsetDateTime, Uuid) {
    fn first() -> Self {
        EARLIEST
    }
    fn encode(&self) -> String {
        format!("{}.{}", self.0.unix_timestamp_nanos() / 1000, self.1)
    }
    fn decode(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('.')?;
        let micros: i128 = micros.parse().ok()?;
        let at = OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1000)?).ok()?;
        Some((at, id.parse().ok()?))
    }
}

impl Key for i64 {
    fn first() -> Self {
        i64::MIN
    }
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl Key for time::Date {
    fn first() -> Self {
        time::Date::MIN
    }
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(text: &str) -> Option<Self> {
        crate::calendar::parse_date(text)
    }
}

/// Text keys travel hex-encoded, so a cursor is plain ASCII whatever the text holds.
impl Key for String {
    fn first() -> Self {
        String::new()
    }
    fn encode(&self) -> String {
        self.bytes().map(|b| format!("{b:02x}")).collect()
    }
    fn decode(text: &str) -> Option<Self> {
        if !text.len().is_multiple_of(2) || !text.is_ascii() {
            return None;
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        // Every text key is clean text (API.md's text rules), so a control character is no
        // cursor this list gave (and Postgres refuses NUL in text).
        String::from_utf8(bytes)
            .ok()
            .filter(|s| !s.chars().any(char::is_control))
    }
}

impl Key for (String, Uuid) {
    fn first() -> Self {
        (String::new(), Uuid::nil())
    }
    fn encode(&self) -> String {
        format!("{}.{}", self.0.encode(), self.1)
    }
    fn decode(text: &str) -> Option<Self> {
        let (name, id) = text.split_once('.')?;
        Some((String::decode(name)?, id.parse().ok()?))
    }
}

/// A page request: how many rows, and after which row (the list's sort key `K`).
#[derive(Debug, Clone)]
pub struct Page<K = (OffsetDateTime, Uuid)> {
    /// Rows wanted (1–1000).
    pub limit: i64,
    /// The last row of the previous page.
    pub after: Option<K>,
    uri: Uri,
}

#[derive(serde::Deserialize)]
struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

impl<S: Send + Sync, K: Key> FromRequestParts<S> for Page<K> {
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
        let after = q
            .cursor
            .map(|c| {
                K::decode(&c)
                    .ok_or_else(|| ApiError::validation("cursor", "is not a cursor this list gave"))
            })
            .transpose()?;
        Ok(Page {
            limit,
            after,
            uri: parts.uri.clone(),
        })
    }
}

impl Page<(OffsetDateTime, Uuid)> {
    /// The first page of the longest size, for a list a response embeds whole (a firm's at most
    /// ten files in its detail).
    pub fn everything() -> Self {
        Page {
            limit: MAX_LIMIT,
            after: None,
            uri: Uri::from_static("/"),
        }
    }

    /// The `(created_at, id)` to continue below in a newest-first list (`where (created_at, id)
    /// < before`): the cursor's, or after every row.
    pub fn before_or_end(&self) -> (OffsetDateTime, Uuid) {
        self.after.unwrap_or(LATEST)
    }
}

impl<K: Key> Page<K> {
    /// The key to start after: the cursor's, or before every row ([`Key::first`]).
    pub fn after_or_start(&self) -> K
    where
        K: Clone,
    {
        self.after.clone().unwrap_or_else(K::first)
    }

    /// The key to start after (or before, for lists in descending order): the cursor's, or
    /// `start`, which lies before every row in the list's order.
    pub fn after_or(&self, start: K) -> K
    where
        K: Clone,
    {
        self.after.clone().unwrap_or(start)
    }

    /// How many rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts `rows` (fetched with [`Page::fetch`], in the list's order) to the page and
    /// answers the headers: `Link: rel="next"` when more follow.
    pub fn finish<T>(&self, rows: &mut Vec<T>, key: impl Fn(&T) -> K) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if rows.len() as i64 > self.limit {
            rows.truncate(self.limit as usize);
            if let Some(last) = rows.last() {
                if let Ok(value) = HeaderValue::from_str(&format!(
                    "<{}>; rel=\"next\"",
                    self.next_url(&key(last).encode())
                )) {
                    headers.insert(header::LINK, value);
                }
            }
        }
        headers
    }

    /// Pages a list already in memory and in its order, keyed by `key`: the rows after the
    /// cursor's row, at most `limit` of them (for short fixed lists such as the rules'
    /// measures, which are not rows in a table).
    pub fn slice<T>(&self, rows: Vec<T>, key: impl Fn(&T) -> K) -> (HeaderMap, Vec<T>)
    where
        K: PartialEq,
    {
        let mut rest: Vec<T> = match &self.after {
            None => rows,
            Some(after) => rows
                .into_iter()
                .skip_while(|r| key(r) != *after)
                .skip(1)
                .collect(),
        };
        rest.truncate(self.fetch() as usize);
        let headers = self.finish(&mut rest, key);
        (headers, rest)
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
        let key = (at, id);
        assert_eq!(<(OffsetDateTime, Uuid)>::decode(&key.encode()), Some(key));
        for bad in ["", "x", "1.y", "abc.00000000-0000-0000-0000-000000000000"] {
            assert!(<(OffsetDateTime, Uuid)>::decode(bad).is_none(), "{bad}");
        }
        let named = ("平台 A&b=c".to_owned(), id);
        assert_eq!(<(String, Uuid)>::decode(&named.encode()), Some(named));
        for bad in ["zz", "e", "ff", "00", "410a"] {
            assert!(String::decode(bad).is_none(), "{bad}");
        }
    }
}
