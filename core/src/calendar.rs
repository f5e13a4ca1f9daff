//! Business dates and months, always in Asia/Shanghai (API.md, "Conventions").

use time::{Date, Month, OffsetDateTime};

use crate::state::SHANGHAI;

/// `YYYY-MM` of a date.
pub fn month_of(date: Date) -> String {
    format!("{:04}-{:02}", date.year(), u8::from(date.month()))
}

/// A month's bounds [start, end) in Asia/Shanghai; `None` when the text is not `YYYY-MM`.
pub fn month_bounds(month: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    if month.len() != 7 || month.as_bytes()[4] != b'-' {
        return None;
    }
    let year: i32 = month[..4].parse().ok()?;
    let m = Month::try_from(month[5..].parse::<u8>().ok()?).ok()?;
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
        for bad in ["2026-13", "2026-00", "2026-1", "26-01", "2026/01", ""] {
            assert!(month_bounds(bad).is_none(), "{bad}");
        }
        assert_eq!(month_of(time::macros::date!(2026 - 03 - 09)), "2026-03");
    }
}
