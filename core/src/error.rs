//! Errors at the HTTP edge: the stable codes of API.md rendered as RFC 9457 problem details.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Every machine-readable `code` the API answers with (API.md, "Conventions"), plus `internal`
/// for the unexpected failure that no client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Body is not the JSON expected.
    MalformedRequest,
    /// No or bad credential.
    Unauthorized,
    /// Credential not allowed to do this.
    Forbidden,
    /// Voucher bound to another platform.
    WrongPlatform,
    /// Staff login needs the one-time code of the account's authenticator.
    OtpRequired,
    /// The same person may not do both steps (approve and pay).
    SeparationOfDuties,
    /// No such resource visible to the caller.
    NotFound,
    /// USCC or username exists.
    AlreadyRegistered,
    /// The firm's registration has not been verified by the bureau.
    NotVerified,
    /// The year's firm quota is full.
    QuotaExhausted,
    /// Nothing left under the firm's annual cap.
    FirmCapReached,
    /// Voucher cancelled, lapsed, expired or past the redeem deadline.
    VoucherNotActive,
    /// Voucher has no balance left.
    VoucherExhausted,
    /// Cancel refused: voucher already used.
    VoucherHasRedemptions,
    /// This platform already redeemed against this invoice number.
    DuplicateInvoice,
    /// Redemption already reversed.
    AlreadyReversed,
    /// The month's statement is approved.
    PeriodClosed,
    /// Statement (or parameter) not in a state that allows this.
    InvalidTransition,
    /// A request with this Idempotency-Key is still being processed.
    IdempotencyInFlight,
    /// This Idempotency-Key was used with a different request.
    IdempotencyKeyReused,
    /// A field is missing or invalid.
    ValidationFailed,
    /// Firm not eligible for the program.
    NotEligible,
    /// Token malformed, bad signature, unknown `kid`, or unknown code.
    InvalidVoucher,
    /// Body over 64 KiB.
    PayloadTooLarge,
    /// Slow down.
    RateLimited,
    /// The server is shedding load; retry after `Retry-After`.
    Overloaded,
    /// Something failed on our side; the detail never says what (it is in the log).
    Internal,
}

impl ErrorCode {
    /// The HTTP status of each code. No `_` arm: a new code cannot compile until it has one.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::MalformedRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized | ErrorCode::OtpRequired => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::WrongPlatform | ErrorCode::SeparationOfDuties => {
                StatusCode::FORBIDDEN
            }
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::AlreadyRegistered
            | ErrorCode::NotVerified
            | ErrorCode::QuotaExhausted
            | ErrorCode::FirmCapReached
            | ErrorCode::VoucherNotActive
            | ErrorCode::VoucherExhausted
            | ErrorCode::VoucherHasRedemptions
            | ErrorCode::DuplicateInvoice
            | ErrorCode::AlreadyReversed
            | ErrorCode::PeriodClosed
            | ErrorCode::InvalidTransition
            | ErrorCode::IdempotencyInFlight => StatusCode::CONFLICT,
            ErrorCode::IdempotencyKeyReused
            | ErrorCode::ValidationFailed
            | ErrorCode::NotEligible
            | ErrorCode::InvalidVoucher => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The snake_case code string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedRequest => "malformed_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::WrongPlatform => "wrong_platform",
            ErrorCode::OtpRequired => "otp_required",
            ErrorCode::SeparationOfDuties => "separation_of_duties",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyRegistered => "already_registered",
            ErrorCode::NotVerified => "not_verified",
            ErrorCode::QuotaExhausted => "quota_exhausted",
            ErrorCode::FirmCapReached => "firm_cap_reached",
            ErrorCode::VoucherNotActive => "voucher_not_active",
            ErrorCode::VoucherExhausted => "voucher_exhausted",
            ErrorCode::VoucherHasRedemptions => "voucher_has_redemptions",
            ErrorCode::DuplicateInvoice => "duplicate_invoice",
            ErrorCode::AlreadyReversed => "already_reversed",
            ErrorCode::PeriodClosed => "period_closed",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::IdempotencyInFlight => "idempotency_in_flight",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::NotEligible => "not_eligible",
            ErrorCode::InvalidVoucher => "invalid_voucher",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
        }
    }

    /// A short human title, the same for every occurrence of the code (RFC 9457 `title`).
    pub fn title(self) -> &'static str {
        match self {
            ErrorCode::MalformedRequest => "The body is not the JSON expected",
            ErrorCode::Unauthorized => "Missing or invalid credential",
            ErrorCode::Forbidden => "Not allowed",
            ErrorCode::WrongPlatform => "Voucher bound to another platform",
            ErrorCode::OtpRequired => "One-time code required",
            ErrorCode::SeparationOfDuties => "Separation of duties",
            ErrorCode::NotFound => "Not found",
            ErrorCode::AlreadyRegistered => "Already registered",
            ErrorCode::NotVerified => "Registration not verified",
            ErrorCode::QuotaExhausted => "The year's firm quota is full",
            ErrorCode::FirmCapReached => "Nothing left under the firm's annual cap",
            ErrorCode::VoucherNotActive => "Voucher not active",
            ErrorCode::VoucherExhausted => "Voucher has no balance left",
            ErrorCode::VoucherHasRedemptions => "Voucher already used",
            ErrorCode::DuplicateInvoice => "Invoice already redeemed",
            ErrorCode::AlreadyReversed => "Redemption already reversed",
            ErrorCode::PeriodClosed => "The month's statement is approved",
            ErrorCode::InvalidTransition => "Not allowed in the current state",
            ErrorCode::IdempotencyInFlight => "A request with this Idempotency-Key is in flight",
            ErrorCode::IdempotencyKeyReused => "Idempotency-Key reused with a different request",
            ErrorCode::ValidationFailed => "Validation failed",
            ErrorCode::NotEligible => "Not eligible",
            ErrorCode::InvalidVoucher => "Invalid voucher",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::RateLimited => "Too many requests",
            ErrorCode::Overloaded => "The server is busy",
            ErrorCode::Internal => "Internal error",
        }
    }
}

/// An error on its way to the client: a code, a detail for people, and for
/// `validation_failed` the field at fault.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    field: Option<String>,
    retry_after_secs: Option<u64>,
    cause: Option<anyhow::Error>,
}

/// The RFC 9457 body every error has.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`urn:voucher:error:<code>`).
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the code.
    pub title: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// What happened in this case.
    pub detail: String,
    /// The stable machine-readable code.
    pub code: ErrorCode,
    /// For `validation_failed`: the request field at fault (dotted path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error with its code and a detail for the caller.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            code,
            detail: detail.into(),
            field: None,
            retry_after_secs: None,
            cause: None,
        }
    }

    /// `validation_failed` naming the field.
    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> ApiError {
        let field = field.into();
        let detail = format!("{field}: {}", detail.into());
        ApiError {
            field: Some(field),
            ..ApiError::new(ErrorCode::ValidationFailed, detail)
        }
    }

    /// `not_found` with a detail.
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, detail)
    }

    /// `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unauthorized, detail)
    }

    /// `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Forbidden, detail)
    }

    /// `rate_limited` with the seconds to wait, sent as `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> ApiError {
        ApiError {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..ApiError::new(ErrorCode::RateLimited, "too many requests; retry later")
        }
    }

    /// `overloaded` (503) with the seconds to wait, sent as `Retry-After`: the server sheds this
    /// request rather than queue it without bound.
    pub fn overloaded(retry_after_secs: u64, detail: impl Into<String>) -> ApiError {
        ApiError {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..ApiError::new(ErrorCode::Overloaded, detail)
        }
    }

    /// The same error with another detail.
    pub fn with_detail(self, detail: impl Into<String>) -> ApiError {
        ApiError {
            detail: detail.into(),
            ..self
        }
    }

    /// The seconds a client should wait before retrying, when the error says.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// A 500 whose cause is logged once and never shown to the client.
    pub fn internal(cause: impl Into<anyhow::Error>) -> ApiError {
        ApiError {
            cause: Some(cause.into()),
            ..ApiError::new(
                ErrorCode::Internal,
                "an internal error occurred; it has been logged",
            )
        }
    }

    /// The error's code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The detail sent to the client.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The problem body this error renders as.
    pub fn problem(&self) -> Problem {
        Problem {
            type_: format!("urn:voucher:error:{}", self.code.as_str()),
            title: self.code.title().to_owned(),
            status: self.code.status().as_u16(),
            detail: self.detail.clone(),
            code: self.code,
            field: self.field.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl std::error::Error for ApiError {}

impl From<sqlx::Error> for ApiError {
    fn from(value: sqlx::Error) -> Self {
        match value {
            // Every pooled connection stayed busy past the acquire timeout: the database is the
            // bottleneck right now, so shed the request instead of answering 500.
            sqlx::Error::PoolTimedOut => ApiError::overloaded(
                1,
                "the server is busy; retry after the number of seconds in Retry-After",
            ),
            other if database_unavailable(&other) => {
                tracing::warn!(error = %other, "database unavailable; answering 503");
                ApiError::overloaded(
                    1,
                    "the database is unavailable (failing over?); retry after the number of seconds in Retry-After",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

/// Whether `err` says the database cannot be reached right now rather than that the request
/// or the SQL is wrong: the connection broke or was refused (a primary killed or being
/// demoted, no primary behind the balancer), the server is shutting down or starting up
/// (SQLSTATE `57P01`–`57P03`), a connection exception (class `08`), or the session landed on
/// a read-only standby (`25006`, a former primary before the balancer notices). Such a request
/// is answered 503 `overloaded` with `Retry-After`: what it wrote either committed or not, and
/// a retry finds out (redemptions by their `Idempotency-Key`, claims by the firm's one slot).
/// `PoolTimedOut` is left to its own arm; constraint violations and every other database
/// error stay 500 or their own code.
pub fn database_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "25006")
        }),
        _ => false,
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(value: anyhow::Error) -> Self {
        if let Some(err) = value.downcast_ref::<sqlx::Error>() {
            if matches!(err, sqlx::Error::PoolTimedOut) || database_unavailable(err) {
                return match value.downcast::<sqlx::Error>() {
                    Ok(err) => ApiError::from(err),
                    Err(value) => ApiError::internal(value),
                };
            }
        }
        ApiError::internal(value)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            tracing::error!(error.code = self.code.as_str(), error.cause = ?cause, "request failed");
        }
        problem_response(&self.problem(), self.retry_after_secs)
    }
}

/// Renders a problem body with `application/problem+json`.
pub fn problem_response(problem: &Problem, retry_after_secs: Option<u64>) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (
        StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(secs) = retry_after_secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Whether a database error is the violation of the named constraint; call sites use it to turn
/// a constraint into its API code (`duplicate_invoice` from `redemptions_platform_invoice_key`).
pub fn is_constraint(err: &sqlx::Error, name: &str) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.constraint() == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_the_status_api_md_gives_it() {
        let cases = [
            ("malformed_request", 400),
            ("unauthorized", 401),
            ("forbidden", 403),
            ("wrong_platform", 403),
            ("otp_required", 401),
            ("separation_of_duties", 403),
            ("not_found", 404),
            ("already_registered", 409),
            ("not_verified", 409),
            ("quota_exhausted", 409),
            ("firm_cap_reached", 409),
            ("voucher_not_active", 409),
            ("voucher_exhausted", 409),
            ("voucher_has_redemptions", 409),
            ("duplicate_invoice", 409),
            ("already_reversed", 409),
            ("period_closed", 409),
            ("invalid_transition", 409),
            ("idempotency_in_flight", 409),
            ("idempotency_key_reused", 422),
            ("validation_failed", 422),
            ("not_eligible", 422),
            ("invalid_voucher", 422),
            ("payload_too_large", 413),
            ("rate_limited", 429),
            ("overloaded", 503),
            ("internal", 500),
        ];
        for (code, status) in cases {
            let parsed: ErrorCode = serde_json::from_value(serde_json::json!(code))
                .unwrap_or_else(|_| panic!("{code} should be a code"));
            assert_eq!(parsed.as_str(), code);
            assert_eq!(parsed.status().as_u16(), status, "{code}");
        }
    }
    #[test]
    fn a_lost_database_is_503_not_500() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let e = ApiError::from(io);
        assert_eq!(e.code.status().as_u16(), 503);
        assert_eq!(e.retry_after_secs, Some(1));
        let e = ApiError::from(anyhow::Error::from(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::UnexpectedEof,
        ))));
        assert_eq!(e.code.status().as_u16(), 503);
        assert_eq!(
            ApiError::from(sqlx::Error::PoolClosed)
                .code
                .status()
                .as_u16(),
            503
        );
        assert_eq!(
            ApiError::from(sqlx::Error::RowNotFound)
                .code
                .status()
                .as_u16(),
            500
        );
    }
}
