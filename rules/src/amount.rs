//! Money amounts as the policy and the HTTP contract write them: CNY, two decimals, never negative.
//!
//! `voucher-core`'s `Money` is built on these two functions, so the API, the voucher parts and
//! the rules module accept exactly the same strings and round exactly the same way.

use rust_decimal::{Decimal, RoundingStrategy};

/// The most integer digits an amount may have: `numeric(14,2)` in Postgres.
pub const MAX_INTEGER_DIGITS: usize = 12;

/// Why a string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// The string is empty.
    #[error("is empty")]
    Empty,
    /// A character other than ASCII digits and one decimal point (signs, exponents, spaces, commas).
    #[error(
        "must contain only digits and one decimal point (no sign, exponent, spaces or separators)"
    )]
    BadCharacter,
    /// More than 12 digits before the decimal point.
    #[error("has more than 12 integer digits")]
    TooManyIntegerDigits,
    /// No digit before the point, or none after it.
    #[error("needs digits on both sides of the decimal point")]
    MissingDigits,
    /// A third decimal: amounts are whole fen.
    #[error("has more than two decimals")]
    TooManyDecimals,
}

/// Parses an amount written as `^[0-9]{1,12}(\.[0-9]{1,2})?$` (API.md, "Conventions") into a
/// `Decimal` of scale exactly 2. Anything else is refused: a sign, an exponent, a third decimal,
/// whitespace, a thousands separator, 13 integer digits.
pub fn parse_amount(text: &str) -> Result<Decimal, AmountError> {
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || !frac_part.is_none_or(all_digits) {
        return Err(AmountError::BadCharacter);
    }
    if int_part.is_empty() || frac_part.is_some_and(str::is_empty) {
        return Err(AmountError::MissingDigits);
    }
    if int_part.len() > MAX_INTEGER_DIGITS {
        return Err(AmountError::TooManyIntegerDigits);
    }
    let frac = frac_part.unwrap_or("");
    if frac.len() > 2 {
        return Err(AmountError::TooManyDecimals);
    }
    // At most 14 digits: fits an i64 mantissa with room to spare.
    let mut mantissa: i64 = 0;
    for b in int_part
        .bytes()
        .chain(frac.bytes())
        .chain("00"[frac.len()..].bytes())
    {
        mantissa = mantissa * 10 + i64::from(b - b'0');
    }
    Ok(Decimal::new(mantissa, 2))
}

/// Floors an amount to the fen (0.01 CNY).
///
/// MEASURES.md, "Common rules": "Percentages are applied with the result floored to the fen";
/// SPEC §2 applies the same rule to a voucher's face value (`floor_fen(annual_fee × rate)`) and
/// to every redemption's discount (`floor_fen(bill_amount × rate)`).
pub fn floor_fen(amount: Decimal) -> Decimal {
    let mut floored = amount.round_dp_with_strategy(2, RoundingStrategy::ToNegativeInfinity);
    floored.rescale(2);
    floored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly_as_the_api_conventions_allow() {
        // API.md, "Conventions": ^[0-9]{1,12}(\.[0-9]{1,2})?$
        let cases: &[(&str, Result<&str, AmountError>)] = &[
            ("0", Ok("0.00")),
            ("15000", Ok("15000.00")),
            ("15000.5", Ok("15000.50")),
            ("15000.55", Ok("15000.55")),
            ("007.10", Ok("7.10")),
            ("999999999999.99", Ok("999999999999.99")),
            ("1000000000000", Err(AmountError::TooManyIntegerDigits)),
            ("1.005", Err(AmountError::TooManyDecimals)),
            ("-1.00", Err(AmountError::BadCharacter)),
            ("+1.00", Err(AmountError::BadCharacter)),
            ("1e3", Err(AmountError::BadCharacter)),
            ("1E3", Err(AmountError::BadCharacter)),
            (" 1.00", Err(AmountError::BadCharacter)),
            ("1,000.00", Err(AmountError::BadCharacter)),
            ("1.0.0", Err(AmountError::BadCharacter)),
            ("１２", Err(AmountError::BadCharacter)),
            (".50", Err(AmountError::MissingDigits)),
            ("5.", Err(AmountError::MissingDigits)),
            ("", Err(AmountError::Empty)),
        ];
        for (text, want) in cases {
            let got = parse_amount(text).map(|d| d.to_string());
            assert_eq!(got, want.clone().map(str::to_owned), "input {text:?}");
        }
    }

    #[test]
    fn floor_fen_truncates_toward_zero_for_non_negative_amounts() {
        let cases = [
            ("4500.009", "4500.00"),
            ("0.019", "0.01"),
            ("3", "3.00"),
            ("2.5", "2.50"),
        ];
        for (input, want) in cases {
            let d: Decimal = input.parse().unwrap();
            assert_eq!(floor_fen(d).to_string(), want, "input {input}");
        }
    }
}
