//! A firm's evidence: the business licence (营业执照) and letter of authorisation (授权委托书)
//! it uploads so that the bureau can verify its registration (SPEC §2, "Who a firm is").
//!
//! A file is JPEG, PNG or PDF, at most 5 MiB, at most 10 per firm (a trigger decides that in
//! Postgres), and its type is read from its own first bytes: a `Content-Type` that does not
//! match them is refused, so nothing else (an executable, an HTML page) gets stored under an
//! image's name. The bureau gets it back only as an attachment with `nosniff` and a sandboxing
//! CSP, never rendered inline by the server.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::audit::{self, Actor};
use voucher_core::auth::{BureauSession, FirmSession, Role};
use voucher_core::error::is_constraint;
use voucher_core::extract::{Path, Query};
use voucher_core::json::{read_body_within, EVIDENCE_READ_TIMEOUT, MAX_EVIDENCE_BYTES};
use voucher_core::page::Page;
use voucher_core::{ApiError, AppState, ErrorCode, Json};

/// What a file shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// 营业执照: the registration's industry and district are read off it.
    BusinessLicense,
    /// 授权委托书: when the contact is not the legal representative.
    AuthorizationLetter,
}

impl EvidenceKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::BusinessLicense => "business_license",
            EvidenceKind::AuthorizationLetter => "authorization_letter",
        }
    }
}

/// The three types a file may have, with the first bytes each starts with.
const SIGNATURES: [(&str, &[u8]); 3] = [
    ("image/jpeg", &[0xFF, 0xD8, 0xFF]),
    (
        "image/png",
        &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A],
    ),
    ("application/pdf", b"%PDF-"),
];

/// The type a file's own bytes say it is (JPEG, PNG or PDF), or `None` for anything else.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    SIGNATURES
        .iter()
        .find(|(_, magic)| bytes.starts_with(magic))
        .map(|(content_type, _)| *content_type)
}

/// The file name extension of a stored type, for the attachment's name.
fn extension(content_type: &str) -> &'static str {
    match content_type {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        _ => "pdf",
    }
}

/// One stored file, without its bytes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Evidence {
    /// File id.
    pub id: Uuid,
    /// `business_license` or `authorization_letter`.
    pub kind: String,
    /// `image/jpeg`, `image/png` or `application/pdf`, as sniffed from the bytes.
    pub content_type: String,
    /// Bytes.
    pub size: i32,
    /// When it was uploaded.
    #[serde(with = "time::serde::rfc3339")]
    pub uploaded_at: OffsetDateTime,
}

/// `?kind=` of an upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// `business_license` or `authorization_letter`.
    #[param(inline)]
    pub kind: EvidenceKind,
}

/// Uploads one evidence file; the body is the file itself. Allowed while the firm is `pending`
/// or `rejected`; a rejected firm's upload makes it `pending` again (a new application). A
/// verified firm, or one that already has 10 files, gets 409 `invalid_transition`.
#[utoipa::path(post, path = "/api/portal/evidence", tag = "portal", params(UploadQuery),
    security(("bearer" = [])),
    responses((status = 201, body = Evidence),
        (status = 409, body = voucher_core::error::Problem, description = "`invalid_transition`: the firm is verified, or has 10 files already"),
        (status = 413, body = voucher_core::error::Problem, description = "`payload_too_large`: file over 5 MiB"),
        (status = 422, body = voucher_core::error::Problem, description = "`validation_failed`: not JPEG, PNG or PDF, or `Content-Type` does not match the bytes")))]
pub async fn upload(
    State(state): State<AppState>,
    session: FirmSession,
    Query(query): Query<UploadQuery>,
    request: Request,
) -> Result<(StatusCode, Json<Evidence>), ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let Some(declared) = SIGNATURES.iter().map(|(t, _)| *t).find(|t| *t == declared) else {
        return Err(ApiError::validation(
            "content_type",
            "must be image/jpeg, image/png or application/pdf",
        ));
    };
    let bytes = read_body_within(request, MAX_EVIDENCE_BYTES, EVIDENCE_READ_TIMEOUT).await?;
    match sniff(&bytes) {
        None => {
            return Err(ApiError::validation(
                "file",
                "is not a JPEG, PNG or PDF file",
            ))
        }
        Some(actual) if actual != declared => {
            return Err(ApiError::validation(
                "content_type",
                format!("is {declared} but the file is {actual}"),
            ))
        }
        Some(_) => {}
    }
    let firm_id = session.firm_id;
    let now = state.clock.now();
    let uploaded_at = now
        .replace_nanosecond(now.microsecond() * 1000)
        .unwrap_or(now);
    let mut tx = state.db.begin().await?;
    // The firm's row first: its state cannot change under the upload, and the trigger's
    // count of files waits here for the firm's other uploads.
    let verification = sqlx::query_scalar!(
        r#"select verification from firms where id = $1 for no key update"#,
        firm_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::unauthorized("this firm no longer exists"))?;
    if verification == "verified" {
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            "this firm is verified already; it needs no more evidence",
        ));
    }
    let stored = store(&mut tx, firm_id, query.kind, declared, &bytes, uploaded_at).await?;
    let reopened = verification == "rejected";
    if reopened {
        sqlx::query!(
            r#"update firms set verification = 'pending', verification_reason = null
               where id = $1"#,
            firm_id
        )
        .execute(&mut *tx)
        .await?;
    }
    audit::append(
        &mut tx,
        &Actor::Firm(firm_id),
        "firm.evidence_upload",
        Some(&format!("firm:{firm_id}")),
        serde_json::json!({"evidence_id": stored.id, "kind": query.kind,
                           "content_type": declared, "size": stored.size,
                           "pending_again": reopened}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

/// Stores a file whose type the caller has sniffed; at most 10 per firm (409
/// `invalid_transition` past them, decided by the table's trigger). The upload and the demo
/// data set.
pub async fn store(
    conn: &mut PgConnection,
    firm_id: Uuid,
    kind: EvidenceKind,
    content_type: &str,
    bytes: &[u8],
    uploaded_at: OffsetDateTime,
) -> Result<Evidence, ApiError> {
    let size = i32::try_from(bytes.len()).map_err(anyhow::Error::from)?;
    let id = Uuid::now_v7();
    let inserted = sqlx::query!(
        r#"insert into firm_evidence (id, firm_id, kind, content_type, size, bytes, uploaded_at)
           values ($1, $2, $3, $4, $5, $6, $7)"#,
        id,
        firm_id,
        kind.as_str(),
        content_type,
        size,
        bytes,
        uploaded_at
    )
    .execute(&mut *conn)
    .await;
    match inserted {
        Err(e) if is_constraint(&e, "firm_evidence_at_most_ten") => Err(ApiError::new(
            ErrorCode::InvalidTransition,
            "a firm keeps at most 10 files; call the bureau (区工业和信息化局) to start again",
        )),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(Evidence {
            id,
            kind: kind.as_str().to_owned(),
            content_type: content_type.to_owned(),
            size,
            uploaded_at,
        }),
    }
}

/// A page of a firm's files, oldest first: the portal's list and the bureau's detail.
pub(crate) async fn files(
    conn: &mut PgConnection,
    firm_id: Uuid,
    page: &Page,
) -> Result<(HeaderMap, Vec<Evidence>), ApiError> {
    let (after_at, after_id) = page.after_or_start();
    let mut rows = sqlx::query_as!(
        Evidence,
        r#"select id, kind, content_type, size, uploaded_at from firm_evidence
           where firm_id = $1 and (uploaded_at, id) > ($2, $3)
           order by uploaded_at, id limit $4"#,
        firm_id,
        after_at,
        after_id,
        page.fetch()
    )
    .fetch_all(&mut *conn)
    .await?;
    let headers = page.finish(&mut rows, |e| (e.uploaded_at, e.id));
    Ok((headers, rows))
}

/// The firm's files, oldest first (paged, see API.md Conventions).
#[utoipa::path(get, path = "/api/portal/evidence", tag = "portal", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query, description = "1–1000, default 1000"),
        ("cursor" = Option<String>, Query, description = "From the `Link` header of the previous page")),
    responses((status = 200, body = [Evidence])))]
pub async fn list(
    State(state): State<AppState>,
    session: FirmSession,
    page: Page,
) -> Result<(HeaderMap, Json<Vec<Evidence>>), ApiError> {
    let mut conn = state.db.acquire().await?;
    let (headers, rows) = files(&mut conn, session.firm_id, &page).await?;
    Ok((headers, Json(rows)))
}

/// One of a firm's files, for the reviewer (and admin): always an attachment, with
/// `nosniff` and a CSP that sandboxes it should a browser open it anyway. Audited.
#[utoipa::path(get, path = "/api/bureau/firms/{id}/evidence/{evidence_id}", tag = "bureau",
    params(("id" = Uuid, Path), ("evidence_id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The file", content(
            (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"), (Vec<u8> = "application/pdf"))),
        (status = 403, body = voucher_core::error::Problem),
        (status = 404, body = voucher_core::error::Problem)))]
pub async fn download(
    State(state): State<AppState>,
    session: BureauSession,
    Path((firm_id, evidence_id)): Path<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    session.require(&[Role::Reviewer, Role::Admin])?;
    let mut tx = state.db.begin().await?;
    let (kind, bytes) = stored(&mut tx, firm_id, evidence_id).await?;
    audit::append(
        &mut tx,
        &session.actor(),
        "firm.evidence_view",
        Some(&format!("firm:{firm_id}")),
        serde_json::json!({"evidence_id": evidence_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(attachment(&kind, evidence_id, bytes))
}

/// One of the firm's own files (to check what it sent); another firm's is 404. Served the
/// way the bureau gets it: as an attachment.
#[utoipa::path(get, path = "/api/portal/evidence/{id}", tag = "portal", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The file", content(
            (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"), (Vec<u8> = "application/pdf"))),
        (status = 404, body = voucher_core::error::Problem)))]
pub async fn own(
    State(state): State<AppState>,
    session: FirmSession,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let mut conn = state.db.acquire().await?;
    let (kind, bytes) = stored(&mut conn, session.firm_id, id).await?;
    Ok(attachment(&kind, id, bytes))
}

/// A file's kind and bytes, when it is `firm_id`'s; another firm's is 404.
async fn stored(
    conn: &mut PgConnection,
    firm_id: Uuid,
    id: Uuid,
) -> Result<(String, Vec<u8>), ApiError> {
    let file = sqlx::query!(
        r#"select kind, bytes from firm_evidence where id = $1 and firm_id = $2"#,
        id,
        firm_id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ApiError::not_found("no such file"))?;
    Ok((file.kind, file.bytes))
}

/// A stored file as a download: its type sniffed again from the bytes, `attachment`,
/// `nosniff`, a CSP that sandboxes it should a browser open it anyway, never cached.
fn attachment(kind: &str, id: Uuid, bytes: Vec<u8>) -> Response {
    let content_type = sniff(&bytes).unwrap_or("application/octet-stream");
    let name = format!("{kind}-{id}.{}", extension(content_type));
    let mut response = voucher_core::export::attachment(content_type, &name, bytes);
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_known_by_its_first_bytes() {
        let cases: [(&[u8], Option<&str>, &str); 7] = [
            (
                &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10],
                Some("image/jpeg"),
                "JFIF JPEG",
            ),
            (
                b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
                Some("image/png"),
                "PNG signature",
            ),
            (b"%PDF-1.7\n", Some("application/pdf"), "PDF header"),
            (b"\x7fELF\x02\x01\x01", None, "an executable"),
            (b"<html><script>", None, "HTML"),
            (b"\x89PNG", None, "a truncated PNG signature"),
            (b"", None, "nothing"),
        ];
        for (bytes, want, why) in cases {
            assert_eq!(sniff(bytes), want, "{why}");
        }
    }
}
