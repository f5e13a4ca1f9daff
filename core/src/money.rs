//! `Money`: CNY with exactly two decimals, never negative, never a float.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use voucher_rules::amount::{self, AmountError};

/// An amount of CNY in fen precision.
///
/// Built only from the strings API.md allows (or from a checked computation), so a value in hand
/// is always valid: scale 2, `0.00 ..= 999999999999.99` (what `numeric(14,2)` holds). JSON carries
/// it as a string; a JSON number is refused at the edge.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Money(Decimal);

/// Why a value could not become `Money`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The text is not in the API's money grammar.
    #[error("{0}")]
    Syntax(#[from] AmountError),
    /// Negative results are refused rather than clamped: a negative amount is always a bug.
    #[error("would be negative")]
    Negative,
    /// Past what `numeric(14,2)` can store.
    #[error("is larger than 999999999999.99")]
    Overflow,
    /// A decimal with more than two places reached a constructor that does not round.
    #[error("has more than two decimals")]
    NotWholeFen,
}

impl Money {
    /// Zero yuan.
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// The largest storable amount, 999999999999.99.
    pub fn max_value() -> Money {
        Money(Decimal::new(99_999_999_999_999, 2))
    }

    /// Parses the API's money grammar `^[0-9]{1,12}(\.[0-9]{1,2})?$` and nothing else.
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        Ok(Money(amount::parse_amount(text)?))
    }

    /// Wraps a decimal that must already be whole fen, in range and non-negative (values read
    /// back from `numeric(14,2)` columns, results of `floor_fen`).
    pub fn from_decimal(value: Decimal) -> Result<Money, MoneyError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative);
        }
        let mut fen = value.normalize();
        if fen.scale() > 2 {
            return Err(MoneyError::NotWholeFen);
        }
        fen.rescale(2);
        let money = Money(fen);
        if money > Money::max_value() {
            return Err(MoneyError::Overflow);
        }
        Ok(money)
    }

    /// A whole number of yuan; for constants in code and tests.
    pub fn from_yuan(yuan: u32) -> Money {
        Money(Decimal::new(i64::from(yuan) * 100, 2))
    }

    /// The decimal value, scale 2.
    pub fn as_decimal(&self) -> Decimal {
        self.0
    }

    /// Whether this is `0.00`.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// `self + other`, refused past the storable maximum.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        let sum = self.0.checked_add(other.0).ok_or(MoneyError::Overflow)?;
        Money::from_decimal(sum)
    }

    /// `self − other`, refused when negative.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        let diff = self.0.checked_sub(other.0).ok_or(MoneyError::Overflow)?;
        Money::from_decimal(diff)
    }

    /// `self − other`, or zero when `other` is larger: "what is left under a cap".
    pub fn saturating_sub(self, other: Money) -> Money {
        self.checked_sub(other).unwrap_or(Money::ZERO)
    }

    /// `floor_fen(self × rate)`: the voucher's face value and each discount (SPEC §2, "Claim" and
    /// "Redemption"). The rate is in `0..=1`, so the result never exceeds `self`; should the
    /// product not be representable it is an error, never a fallback to another amount. SQL's
    /// `floor_fen` (migration 0006) is tested against this on the same inputs.
    pub fn times_rate_floor_fen(self, rate: Rate) -> Result<Money, MoneyError> {
        let product = self.0.checked_mul(rate.0).ok_or(MoneyError::Overflow)?;
        Money::from_decimal(floor_fen(product))
    }
}

/// Floors to the fen; MEASURES.md "Common rules" and SPEC §2 (one rule for every percentage).
pub fn floor_fen(amount: Decimal) -> Decimal {
    amount::floor_fen(amount)
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

impl TryFrom<String> for Money {
    type Error = MoneyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Money::parse(&value)
    }
}

impl From<Money> for String {
    fn from(value: Money) -> Self {
        value.to_string()
    }
}

impl sqlx::Type<sqlx::Postgres> for Money {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <Decimal as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Postgres> for Money {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <Decimal as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Money {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let decimal = <Decimal as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(Money::from_decimal(decimal)?)
    }
}

impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^[0-9]{1,12}(\.[0-9]{1,2})?$"))
            .description(Some(
                "CNY as a decimal string; responses always carry two decimals",
            ))
            .examples([serde_json::json!("15000.00")])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

/// A share between 0 and 1 (the program's `rate`, 0.30 by default).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct Rate(Decimal);

impl Rate {
    /// Refuses anything outside `0..=1`: a rate above one would pay more than the bill.
    pub fn new(value: Decimal) -> Option<Rate> {
        (value >= Decimal::ZERO && value <= Decimal::ONE).then_some(Rate(value.normalize()))
    }

    /// The decimal value.
    pub fn as_decimal(&self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self})")
    }
}

impl From<Rate> for String {
    fn from(value: Rate) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn money_parses_only_the_api_grammar_and_displays_two_decimals() {
        // API.md, "Conventions": strings matching ^[0-9]{1,12}(\.[0-9]{1,2})?$ only.
        let cases: &[(&str, Option<&str>)] = &[
            ("15000", Some("15000.00")),
            ("15000.5", Some("15000.50")),
            ("0.01", Some("0.01")),
            ("0", Some("0.00")),
            ("999999999999.99", Some("999999999999.99")),
            ("1.001", None),            // a third decimal
            ("-5.00", None),            // a sign
            ("+5.00", None),            // a sign
            ("1e5", None),              // an exponent
            ("1000000000000", None),    // 13 integer digits
            ("1000000000000.00", None), // 13 integer digits with decimals
            ("12,000.00", None),
            ("", None),
            (" 1", None),
            ("NaN", None),
        ];
        for (input, want) in cases {
            let got = Money::parse(input).ok().map(|m| m.to_string());
            assert_eq!(got.as_deref(), *want, "input {input:?}");
        }
    }

    #[test]
    fn money_in_json_must_be_a_string() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#""15000.00""#, Some("15000.00")),
            (r#""7.5""#, Some("7.50")),
            ("15000", None),    // a JSON number
            ("15000.00", None), // a JSON number with decimals
            (r#""15000.001""#, None),
            (r#""-1""#, None),
            (r#""1e3""#, None),
            ("null", None),
        ];
        for (json, want) in cases {
            let got = serde_json::from_str::<Money>(json)
                .ok()
                .map(|m| m.to_string());
            assert_eq!(got.as_deref(), *want, "json {json}");
        }
        assert_eq!(serde_json::to_string(&m("3")).unwrap(), r#""3.00""#);
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(m("1.10").checked_add(m("2.95")).unwrap(), m("4.05"));
        assert_eq!(m("5.00").checked_sub(m("5.00")).unwrap(), Money::ZERO);
        assert_eq!(m("5.00").checked_sub(m("5.01")), Err(MoneyError::Negative));
        assert_eq!(
            Money::max_value().checked_add(m("0.01")),
            Err(MoneyError::Overflow)
        );
        assert_eq!(m("5.00").saturating_sub(m("7.00")), Money::ZERO);
    }

    #[test]
    fn rate_products_are_floored_to_the_fen() {
        // SPEC §2: face value = floor_fen(annual_fee × rate); discount = floor_fen(bill × rate).
        let rate = Rate::new("0.30".parse().unwrap()).unwrap();
        let cases = [
            ("50000.00", "15000.00"),
            ("33.33", "9.99"),         // 9.999 floors, never rounds up
            ("0.03", "0.00"),          // 0.009
            ("0.04", "0.01"),          // 0.012
            ("166666.67", "50000.00"), // 50000.001
            ("999999999999.99", "299999999999.99"),
        ];
        for (amount, want) in cases {
            assert_eq!(
                m(amount).times_rate_floor_fen(rate).unwrap().to_string(),
                want,
                "amount {amount}"
            );
        }
    }

    #[test]
    fn from_decimal_refuses_negative_and_fractional_fen() {
        assert!(Money::from_decimal("-0.01".parse().unwrap()).is_err());
        assert!(Money::from_decimal("0.001".parse().unwrap()).is_err());
        assert_eq!(
            Money::from_decimal("2.500".parse().unwrap())
                .unwrap()
                .to_string(),
            "2.50"
        );
        assert!(Rate::new("1.01".parse().unwrap()).is_none());
        assert!(Rate::new("-0.1".parse().unwrap()).is_none());
    }
}
