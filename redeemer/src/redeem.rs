//! The platform API: verify, redeem, list, reverse (SPEC §2, "Redemption").

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ring::digest::{digest, SHA256};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::audit::{self, Actor};
use voucher_core::error::is_constraint;
use voucher_core::extract::{Path, Query};
use voucher_core::ledger::{self, Account, Kind, Posting};
use voucher_core::platform::{self, PlatformCredential, PlatformKey};
use voucher_core::text;
use voucher_core::token::TokenError;
use voucher_core::vouchers::effective_status;
use voucher_core::{code, ApiError, AppState, ErrorCode, Json, Money};

/// The `Idempotency-Key` header: 1 to 64 printable ASCII characters.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get("idempotency-key")
            .ok_or_else(|| ApiError::validation("Idempotency-Key", "the header is required"))?;
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > 64 || !bytes.iter().all(|b| (0x20..=0x7e).contains(b))
        {
            return Err(ApiError::validation(
                "Idempotency-Key",
                "must be 1 to 64 printable ASCII characters",
            ));
        }
        Ok(IdempotencyKey(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// A voucher as it was presented: the signed token, or the short code.
enum Presented {
    Token(Uuid),
    Code(String),
}

/// Reads what the platform presented. A token is checked offline first (signature, key,
/// expiry, binding); a code is only checked for form here.
fn presented(
    state: &AppState,
    platform_id: Option<Uuid>,
    voucher: &str,
) -> Result<Presented, ApiError> {
    let voucher = voucher.trim();
    if voucher.contains('.') {
        let claims = state
            .verified_tokens
            .verify(
                &state.keys.get(),
                voucher,
                state.clock.now().unix_timestamp(),
            )
            .map_err(|e| match e {
                TokenError::Expired => ApiError::new(
                    ErrorCode::VoucherNotActive,
                    "this voucher is past the redeem deadline",
                ),
                other => ApiError::new(ErrorCode::InvalidVoucher, other.to_string()),
            })?;
        if platform_id.is_some_and(|p| p != claims.platform) {
            return Err(ApiError::new(
                ErrorCode::WrongPlatform,
                "this voucher is bound to another platform",
            ));
        }
        Ok(Presented::Token(claims.jti))
    } else {
        code::normalise(voucher)
            .map(Presented::Code)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidVoucher,
                    "not a voucher token or a code such as BA26-7KQM-PX3D",
                )
            })
    }
}

/// What the platform asks to verify.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The token (from the QR) or the short code.
    pub voucher: String,
}

/// A voucher as platforms see it, with its live balance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlatformVoucher {
    /// Id.
    pub id: Uuid,
    /// Short code.
    pub code: String,
    /// Program year.
    pub year: i32,
    /// The firm's USCC.
    pub firm_uscc: String,
    /// The firm's name.
    pub firm_name: String,
    /// The bound platform (the caller).
    pub platform_id: Uuid,
    /// Face value.
    pub face_value: Money,
    /// Redeemed so far, net of reversals.
    pub redeemed: Money,
    /// Live balance.
    pub remaining: Money,
    /// Share of a bill the voucher pays, e.g. `"0.30"`.
    pub rate: String,
    /// `active` (verify answers only for usable vouchers).
    pub status: String,
    /// No redemption after this instant.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The verify answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Verified {
    /// The voucher.
    pub voucher: PlatformVoucher,
}

/// Checks a voucher for the calling platform and returns its live balance; changes nothing.
#[utoipa::path(post, path = "/v1/vouchers/verify", tag = "platform", request_body = VerifyRequest,
    security(("bearer" = [])),
    responses((status = 200, body = Verified),
        (status = 403, body = voucher_core::error::Problem, description = "`wrong_platform`"),
        (status = 409, body = voucher_core::error::Problem, description = "`voucher_not_active`, `voucher_exhausted`"),
        (status = 422, body = voucher_core::error::Problem, description = "`invalid_voucher`")))]
pub async fn verify(
    State(state): State<AppState>,
    key: PlatformKey,
    Json(request): Json<VerifyRequest>,
) -> Result<Json<Verified>, ApiError> {
    let (id, code) = match presented(&state, Some(key.platform_id), &request.voucher)? {
        Presented::Token(id) => (Some(id), None),
        Presented::Code(code) => (None, Some(code)),
    };
    let row = sqlx::query!(
        r#"select v.id, v.code, v.year, f.uscc, f.name, v.platform_id, v.face_value, v.redeemed,
                  v.redemption_count, v.status, v.lapses_at, v.expires_at, p.rate
           from vouchers v join firms f on f.id = v.firm_id join program_years p on p.year = v.year
           where ($1::uuid is not null and v.id = $1) or ($2::text is not null and v.code = $2)"#,
        id,
        code
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::new(ErrorCode::InvalidVoucher, "no voucher has this code"))?;
    if row.platform_id != key.platform_id {
        return Err(ApiError::new(
            ErrorCode::WrongPlatform,
            "this voucher is bound to another platform",
        ));
    }
    let status = effective_status(
        &row.status,
        row.redemption_count,
        row.lapses_at,
        row.expires_at,
        state.clock.now(),
    );
    match status {
        "active" => {}
        "exhausted" => {
            return Err(ApiError::new(
                ErrorCode::VoucherExhausted,
                "this voucher has no balance left",
            ))
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::VoucherNotActive,
                format!("this voucher is {other}"),
            ))
        }
    }
    let money = |d| Money::from_decimal(d).map_err(anyhow::Error::from);
    let face_value = money(row.face_value)?;
    let redeemed = money(row.redeemed)?;
    Ok(Json(Verified {
        voucher: PlatformVoucher {
            id: row.id,
            code: row.code,
            year: row.year,
            firm_uscc: row.uscc,
            firm_name: row.name,
            platform_id: row.platform_id,
            face_value,
            redeemed,
            remaining: face_value.saturating_sub(redeemed),
            rate: format!("{:.2}", row.rate),
            status: status.to_owned(),
            expires_at: row.expires_at,
        },
    }))
}

/// A redemption at billing.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedemptionRequest {
    /// The token (from the QR) or the short code.
    pub voucher: String,
    /// The platform's invoice number; used once per platform.
    pub invoice_no: String,
    /// The bill before the discount (greater than zero).
    pub bill_amount: Money,
    /// The contract the bill belongs to (evidence for reimbursement).
    pub contract_no: Option<String>,
    /// The period billed, `YYYY-MM` (evidence for reimbursement).
    pub billing_period: Option<String>,
}

/// A redemption.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Redemption {
    /// Id.
    pub id: Uuid,
    /// The voucher.
    pub voucher_id: Uuid,
    /// Invoice number.
    pub invoice_no: String,
    /// The bill.
    pub bill_amount: Money,
    /// What the voucher paid: min(floor_fen(bill × rate), remaining).
    pub discount: Money,
    /// What the firm pays: bill − discount.
    pub payable: Money,
    /// The voucher's balance after this redemption (after the reversal, on a reversal).
    pub voucher_remaining: Money,
    /// `active` or `reversed`.
    pub status: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Evidence: contract number.
    pub contract_no: Option<String>,
    /// Evidence: period billed.
    pub billing_period: Option<String>,
}

/// An invoice or contract number as uniqueness sees it: clean text (API.md's text rules), then
/// [`text::reference_key`] (NFKC, invisible characters removed, dashes unified), 1 to 64
/// characters. What is stored and compared is this form, so look-alikes are one invoice.
fn reference(field: &str, value: &str) -> Result<String, ApiError> {
    let key = text::reference_key(&text::required(field, value, 64)?);
    let n = key.chars().count();
    if n == 0 || n > 64 {
        return Err(ApiError::validation(field, "must be 1 to 64 characters"));
    }
    Ok(key)
}

/// The request checked and its numbers normalised, before its fingerprint is taken.
fn normalise_request(mut request: RedemptionRequest) -> Result<RedemptionRequest, ApiError> {
    request.invoice_no = reference("invoice_no", &request.invoice_no)?;
    if request.bill_amount.is_zero() {
        return Err(ApiError::validation(
            "bill_amount",
            "must be greater than zero",
        ));
    }
    if let Some(contract) = &request.contract_no {
        request.contract_no = Some(reference("contract_no", contract)?);
    }
    if let Some(period) = &request.billing_period {
        if voucher_core::calendar::parse_month(period).is_none() {
            return Err(ApiError::validation(
                "billing_period",
                "must be YYYY-MM with a year from 2000 to 2100",
            ));
        }
    }
    Ok(request)
}

fn outcome_error(outcome: &str, detail: String) -> ApiError {
    match outcome {
        "invalid_voucher" => ApiError::new(ErrorCode::InvalidVoucher, detail),
        "wrong_platform" => ApiError::new(ErrorCode::WrongPlatform, detail),
        "voucher_not_active" => ApiError::new(ErrorCode::VoucherNotActive, detail),
        "voucher_exhausted" => ApiError::new(ErrorCode::VoucherExhausted, detail),
        "duplicate_invoice" => ApiError::new(ErrorCode::DuplicateInvoice, detail),
        "idempotency_in_flight" => ApiError::new(ErrorCode::IdempotencyInFlight, detail),
        "idempotency_key_reused" => ApiError::new(ErrorCode::IdempotencyKeyReused, detail),
        "bill_too_small" => ApiError::validation("bill_amount", detail),
        other => ApiError::internal(anyhow::anyhow!("unknown redemption outcome {other}")),
    }
}

fn replayed(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// Redeems a voucher against a bill. One Postgres round trip decides it (see the
/// `redeem_voucher` function); a retry with the same Idempotency-Key and body gets the first
/// answer again, with `Idempotent-Replayed: true`.
#[utoipa::path(post, path = "/v1/redemptions", tag = "platform", request_body = RedemptionRequest,
    params(("Idempotency-Key" = String, Header, description = "1 to 64 printable ASCII characters")),
    security(("bearer" = [])),
    responses((status = 201, body = Redemption),
        (status = 403, body = voucher_core::error::Problem, description = "`wrong_platform`"),
        (status = 409, body = voucher_core::error::Problem,
            description = "`voucher_not_active`, `voucher_exhausted`, `duplicate_invoice`, `idempotency_in_flight`"),
        (status = 422, body = voucher_core::error::Problem,
            description = "`invalid_voucher`, `idempotency_key_reused`, `validation_failed`"),
        (status = 429, body = voucher_core::error::Problem, description = "`rate_limited`")))]
pub async fn redeem(
    State(state): State<AppState>,
    credential: PlatformCredential,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    Json(request): Json<RedemptionRequest>,
) -> Result<Response, ApiError> {
    let request = normalise_request(request)?;
    let canonical = serde_json::to_vec(&request).map_err(anyhow::Error::from)?;
    let mut fingerprint_input = b"POST /v1/redemptions\n".to_vec();
    fingerprint_input.extend_from_slice(&canonical);
    let fingerprint = digest(&SHA256, &fingerprint_input).as_ref().to_vec();
    // The binding to the caller is checked with the API key, inside the one round trip.
    let (voucher_id, code) = match presented(&state, None, &request.voucher)? {
        Presented::Token(id) => (Some(id), None),
        Presented::Code(code) => (None, Some(code)),
    };
    let now = state.clock.now();
    let result = sqlx::query!(
        r#"select outcome as "outcome!", detail, replayed as "replayed!", key_id, redemption_id,
                  voucher_id, discount, voucher_remaining, created_at
           from redeem_voucher($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"#,
        credential.hash,
        idempotency_key,
        fingerprint,
        voucher_id,
        code,
        request.invoice_no,
        request.bill_amount.as_decimal(),
        request.contract_no,
        request.billing_period,
        now,
        Uuid::now_v7(),
    )
    .fetch_one(&state.db)
    .await;
    let row = match result {
        Ok(row) => row,
        Err(e) if is_constraint(&e, "redemptions_platform_invoice_key") => {
            // Two requests with the same invoice raced past the check; the loser's answer is
            // stored like any other refusal, so its retries get it too.
            let detail = "this platform already redeemed against this invoice number";
            sqlx::query!(
                r#"insert into idempotency_keys (platform_id, key, fingerprint, outcome, detail)
                   select platform_id, $2, $3, 'duplicate_invoice', $4 from api_keys where hash = $1
                   on conflict do nothing"#,
                credential.hash,
                idempotency_key,
                fingerprint,
                detail
            )
            .execute(&state.db)
            .await?;
            return Err(ApiError::new(ErrorCode::DuplicateInvoice, detail));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(key_id) = row.key_id {
        platform::touch(&state, key_id);
    }
    let response = match row.outcome.as_str() {
        "created" => {
            let money = |d: Option<rust_decimal::Decimal>| {
                Money::from_decimal(d.unwrap_or_default()).map_err(anyhow::Error::from)
            };
            let discount = money(row.discount)?;
            let body = Redemption {
                id: row
                    .redemption_id
                    .ok_or_else(|| anyhow::anyhow!("created without an id"))?,
                voucher_id: row
                    .voucher_id
                    .ok_or_else(|| anyhow::anyhow!("created without a voucher"))?,
                invoice_no: request.invoice_no,
                bill_amount: request.bill_amount,
                discount,
                payable: request
                    .bill_amount
                    .checked_sub(discount)
                    .map_err(anyhow::Error::from)?,
                voucher_remaining: money(row.voucher_remaining)?,
                status: "active".to_owned(),
                created_at: row
                    .created_at
                    .ok_or_else(|| anyhow::anyhow!("created without a time"))?,
                contract_no: request.contract_no,
                billing_period: request.billing_period,
            };
            (StatusCode::CREATED, Json(body)).into_response()
        }
        "unauthorized" => return Err(ApiError::unauthorized(row.detail.unwrap_or_default())),
        other => outcome_error(other, row.detail.unwrap_or_default()).into_response(),
    };
    Ok(if row.replayed {
        replayed(response)
    } else {
        response
    })
}

/// Which month.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthQuery {
    /// `YYYY-MM`, Asia/Shanghai.
    pub month: Option<String>,
}

/// Parses the `month` query parameter into the month's bounds in Asia/Shanghai.
fn month_bounds(month: Option<&str>) -> Result<(OffsetDateTime, OffsetDateTime), ApiError> {
    let month = month.ok_or_else(|| ApiError::validation("month", "is required (YYYY-MM)"))?;
    voucher_core::calendar::month_bounds(month)
        .ok_or_else(|| ApiError::validation("month", "must be YYYY-MM"))
}

/// A redemption as listed, with its current status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListedRedemption {
    /// The redemption as first answered, with its current status.
    #[serde(flatten)]
    pub redemption: Redemption,
    /// When reversed, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub reversed_at: Option<OffsetDateTime>,
    /// Why it was reversed.
    pub reversal_reason: Option<String>,
}

/// The calling platform's redemptions made in a month.
#[utoipa::path(get, path = "/v1/redemptions", tag = "platform", params(MonthQuery),
    security(("bearer" = [])), responses((status = 200, body = [ListedRedemption])))]
pub async fn list(
    State(state): State<AppState>,
    key: PlatformKey,
    Query(q): Query<MonthQuery>,
    page: voucher_core::page::Page,
) -> Result<(axum::http::HeaderMap, Json<Vec<ListedRedemption>>), ApiError> {
    let (from, to) = month_bounds(q.month.as_deref())?;
    let (after_at, after_id) = page.after_or_start();
    let rows = sqlx::query!(
        r#"select id, voucher_id, invoice_no, bill_amount, discount, voucher_remaining_after, status,
                  created_at, contract_no, billing_period, reversed_at, reversal_reason
           from redemptions
           where platform_id = $1 and created_at >= $2 and created_at < $3
             and (created_at, id) > ($4, $5)
           order by created_at, id
           limit $6"#,
        key.platform_id,
        from,
        to,
        after_at,
        after_id,
        page.fetch()
    )
    .fetch_all(&state.db)
    .await?;
    let money = |d| Money::from_decimal(d).map_err(anyhow::Error::from);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let bill = money(r.bill_amount)?;
        let discount = money(r.discount)?;
        out.push(ListedRedemption {
            redemption: Redemption {
                id: r.id,
                voucher_id: r.voucher_id,
                invoice_no: r.invoice_no,
                bill_amount: bill,
                discount,
                payable: bill.checked_sub(discount).map_err(anyhow::Error::from)?,
                voucher_remaining: money(r.voucher_remaining_after)?,
                status: r.status,
                created_at: r.created_at,
                contract_no: r.contract_no,
                billing_period: r.billing_period,
            },
            reversed_at: r.reversed_at,
            reversal_reason: r.reversal_reason,
        });
    }
    let headers = page.finish(&mut out, |r| (r.redemption.created_at, r.redemption.id));
    Ok((headers, Json(out)))
}

/// Why an invoice was voided.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReversalRequest {
    /// 1 to 500 characters.
    pub reason: String,
}

/// Reverses a redemption (the invoice was voided): the discount returns to the voucher.
/// Only the platform that made it, and only until its month's statement is approved.
#[utoipa::path(post, path = "/v1/redemptions/{id}/reversal", tag = "platform",
    params(("id" = Uuid, Path)), request_body = ReversalRequest, security(("bearer" = [])),
    responses((status = 200, body = Redemption),
        (status = 404, body = voucher_core::error::Problem),
        (status = 409, body = voucher_core::error::Problem, description = "`already_reversed`, `period_closed`")))]
pub async fn reverse(
    State(state): State<AppState>,
    key: PlatformKey,
    Path(id): Path<Uuid>,
    Json(request): Json<ReversalRequest>,
) -> Result<Json<Redemption>, ApiError> {
    let reason = text::required("reason", &request.reason, 500)?;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let reversed = sqlx::query!(
        r#"update redemptions set status = 'reversed', reversed_at = $3, reversal_reason = $4
           where id = $1 and platform_id = $2 and status = 'active' and not locked
           returning voucher_id, firm_id, year, invoice_no, bill_amount, discount, created_at,
                     contract_no, billing_period"#,
        id,
        key.platform_id,
        now,
        reason
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(r) = reversed else {
        let existing = sqlx::query!(
            r#"select status, locked from redemptions where id = $1 and platform_id = $2"#,
            id,
            key.platform_id
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found("no such redemption"))?;
        return Err(if existing.status == "reversed" {
            ApiError::new(
                ErrorCode::AlreadyReversed,
                "this redemption is already reversed",
            )
        } else {
            ApiError::new(
                ErrorCode::PeriodClosed,
                "the statement for this redemption's month is approved; it can no longer be reversed",
            )
        });
    };
    // The voucher's row, then the firm's: the order every writer of both follows.
    let voucher = sqlx::query!(
        r#"update vouchers set redeemed = redeemed - $2,
                  status = case when status = 'exhausted' then 'active' else status end
           where id = $1 returning face_value - redeemed as "remaining!", status"#,
        r.voucher_id,
        r.discount
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        r#"update firm_years set redeemed = redeemed - $3 where firm_id = $1 and year = $2"#,
        r.firm_id,
        r.year,
        r.discount
    )
    .execute(&mut *tx)
    .await?;
    let remaining = voucher.remaining;
    let money = |d| Money::from_decimal(d).map_err(anyhow::Error::from);
    let discount = money(r.discount)?;
    ledger::post(
        &mut tx,
        &Posting {
            kind: Kind::Reversal,
            debit: Account::Voucher(r.voucher_id),
            credit: Account::Payable(key.platform_id),
            amount: discount,
            year: r.year,
            voucher_id: Some(r.voucher_id),
            redemption_id: Some(id),
            statement_id: None,
            at: now,
        },
    )
    .await?;
    // A voucher already expired (its unused balance went back to the budget at the deadline)
    // cannot hold the returned discount: it goes on to the budget too, and out of the firm's
    // granted total, as the expiry would have done had the bill never been redeemed.
    if voucher.status == "expired" {
        ledger::post(
            &mut tx,
            &Posting {
                kind: Kind::Expire,
                debit: Account::Budget(r.year),
                credit: Account::Voucher(r.voucher_id),
                amount: discount,
                year: r.year,
                voucher_id: Some(r.voucher_id),
                redemption_id: Some(id),
                statement_id: None,
                at: now,
            },
        )
        .await?;
        sqlx::query!(
            r#"update firm_years set granted = granted - $3 where firm_id = $1 and year = $2"#,
            r.firm_id,
            r.year,
            r.discount
        )
        .execute(&mut *tx)
        .await?;
    }
    audit::append(
        &mut tx,
        &Actor::Platform(key.platform_id),
        "redemption.reverse",
        Some(&format!("redemption:{id}")),
        serde_json::json!({"voucher_id": r.voucher_id, "discount": discount, "reason": reason}),
    )
    .await?;
    tx.commit().await?;
    let bill = money(r.bill_amount)?;
    Ok(Json(Redemption {
        id,
        voucher_id: r.voucher_id,
        invoice_no: r.invoice_no,
        bill_amount: bill,
        discount,
        payable: bill.checked_sub(discount).map_err(anyhow::Error::from)?,
        voucher_remaining: money(remaining)?,
        status: "reversed".to_owned(),
        created_at: r.created_at,
        contract_no: r.contract_no,
        billing_period: r.billing_period,
    }))
}
