//! Look-ups: the bureau's vouchers and redemptions (a hotline call about a voucher code, a
//! firm's or a platform's month), and a firm's own voucher's redemptions. Read-only; every
//! list is newest first and paged by `(time, id)` downwards (`voucher_core::page`), and each
//! bureau list has a CSV of the same filter for the finance office (`voucher_core::export`).

pub mod redemptions;
pub mod vouchers;

use voucher_core::{ApiError, Money};

/// The most rows a CSV of a filter holds; a wider filter is refused, to be narrowed.
pub const CSV_MAX_ROWS: i64 = 100_000;

pub(crate) fn money(d: rust_decimal::Decimal) -> Result<Money, ApiError> {
    Ok(Money::from_decimal(d).map_err(anyhow::Error::from)?)
}

pub(crate) fn status_filter(
    field: &str,
    value: Option<String>,
    known: &[&str],
) -> Result<Option<String>, ApiError> {
    match value {
        Some(s) if known.contains(&s.as_str()) => Ok(Some(s)),
        Some(_) => Err(ApiError::validation(
            field,
            format!("must be one of {}", known.join(", ")),
        )),
        None => Ok(None),
    }
}

/// Refuses a CSV of more than [`CSV_MAX_ROWS`] rows.
pub(crate) fn too_many(rows: usize) -> Result<(), ApiError> {
    if rows as i64 > CSV_MAX_ROWS {
        return Err(ApiError::validation(
            "query",
            "matches more than 100,000 rows; narrow the filter",
        ));
    }
    Ok(())
}
