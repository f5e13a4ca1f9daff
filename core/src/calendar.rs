//! Business dates and months, always in Asia/Shanghai (API.md, "Conventions").

use time::{Date, Month, OffsetDateTime};

use crate::state::SHANGHAI;

/// `YYYY-MM` of a date.
pub fn month_of(date: Date) -> String {
    format!("{:04}-{:02}", date.year(), u8::from(date.month()))
}

/// Years a date or month may name (API.md: "a four-digit year between 2000 and 2100").
pub const YEARS: std::ops::RangeInclusive<i32> = 2000..=2100;

/// Digits only: `str::parse` would also take a sign (`"+1"`).
fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `YYYY-MM` with a year in [`YEARS`]; `None` for anything else.
pub fn parse_month(text: &str) -> Option<(i32, Month)> {
    if text.len() != 7 || text.as_bytes()[4] != b'-' {
        return None;
    }
    let year: i32 = digits(&text[..4]).filter(|y| YEARS.contains(y))?;
    let month = Month::try_from(digits::<u8>(&text[5..])?).ok()?;
    Some((year, month))
}

/// `YYYY-MM-DD`, a real date with a year in [`YEARS`]; `None` for anything else.
pub fn parse_date(text: &str) -> Option<Date> {
    if text.len() != 10 || text.as_bytes()[7] != b'-' {
        return None;
    }
    let (year, month) = parse_month(&text[..7])?;
    Date::from_calendar_date(year, month, digits(&text[8..])?).ok()
}

/// A month's bounds [start, end) in Asia/Shanghai; `None` when the text is not `YYYY-MM`
/// (with a year in [`YEARS`]).
pub fn month_bounds(month: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let (year, m) = parse_month(month)?;
    let start = Date::from_calendar_date(year, m, 1).ok()?;
    let next = if m == Month::December {
        Date::from_calendar_date(year + 1, Month::January, 1).ok()?
    } else {
        Date::from_calendar_date(year, m.next(), 1).ok()?
    };
    Some((
        start.midnight().assume_offset(SHANGHAI),
        next.midnight().assume_offset(SHANGHAI),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_shanghai_months() {
        let (start, end) = month_bounds("2026-12").unwrap();
        assert_eq!(start.to_string(), "2026-12-01 0:00:00.0 +08:00:00");
        assert_eq!(end.to_string(), "2027-01-01 0:00:00.0 +08:00:00");
        for bad in [
            "2026-13", "2026-00", "2026-1", "26-01", "2026/01", "", "2026-+1", "+026-01",
            "1999-12", "2101-01", "0000-01", "-001-01",
        ] {
            assert!(month_bounds(bad).is_none(), "{bad}");
        }
        assert_eq!(month_of(time::macros::date!(2026 - 03 - 09)), "2026-03");
    }

    #[test]
    fn dates_have_four_digit_years_from_2000_to_2100() {
        assert_eq!(
            parse_date("2026-12-31"),
            Some(time::macros::date!(2026 - 12 - 31))
        );
        for bad in [
            "0000-01-01",
            "-0001-01-01",
            "-9999-01-01",
            "1999-12-31",
            "2101-01-01",
            "2026-02-30",
            "2026-+1-01",
            "2026-01-+1",
            "2026-1-01",
            "20260101",
            "",
        ] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }
}
