//! What every part agrees a voucher's status is right now.

use time::OffsetDateTime;

/// The status a voucher has at `now`: the nightly job writes lapse and expiry, but a voucher
/// past its dates reads as lapsed or expired at once, exactly as redemption treats it.
pub fn effective_status(
    stored: &str,
    redemption_count: i32,
    lapses_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> &str {
    match stored {
        "active" | "exhausted" if now > expires_at => "expired",
        "active" if redemption_count == 0 && now > lapses_at => "lapsed",
        other => other,
    }
}
