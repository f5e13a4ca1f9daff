//! The shape of a policy data file (`rules/policy/*.toml`) and the strict readers of its values.
//!
//! Every struct refuses unknown keys (`deny_unknown_fields`): the commonest fault of parameter
//! files is a block that is misspelt and silently ignored, leaving a default in force. Amounts are
//! strings in the money grammar, rates are decimal strings, dates are `YYYY-MM-DD` strings: no
//! TOML floats, so no value is ever a binary fraction.

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use time::Date;

use crate::measures::MeasureSet;

/// One policy version as its data file writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionFile {
    /// Version id: `2021` or `revised`.
    pub id: String,
    /// The document number (文号) or, where the texts give none, the document's name.
    pub document: String,
    /// The policy's title.
    pub title: String,
    /// First day in force.
    #[serde(deserialize_with = "date")]
    pub valid_from: Date,
    /// Last day in force, inclusive; absent when open-ended.
    #[serde(default, deserialize_with = "optional_date")]
    pub valid_until: Option<Date>,
    /// The measures of this version, by id.
    pub measures: MeasureSet,
}

/// What every measure block has besides its own parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MeasureDef<P> {
    /// Chinese title, for lists and the console.
    pub title: String,
    /// Clause id, e.g. `三(1)`: section number and paragraph within it.
    pub clause: String,
    /// The clause's sentence(s), quoted from the policy text.
    pub text: String,
    /// Most awards per year; `"none"` where the text sets no cap.
    #[serde(deserialize_with = "quota")]
    pub annual_quota: Option<u32>,
    /// Remarks the reviewer should see in every trace of this measure.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The measure's own numbers.
    pub params: P,
}

/// A fixed award, for measures whose only parameter is the amount.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FixedAward {
    /// The award in CNY.
    #[serde(deserialize_with = "amount")]
    pub award: Decimal,
}

/// Reads an amount written as a string in the money grammar.
pub(crate) fn amount<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::parse_amount(&text).map_err(|e| D::Error::custom(format!("amount {text:?} {e}")))
}

/// Reads a rate written as a decimal string between 0 and 1 (`"0.30"`).
pub(crate) fn rate<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    let text = String::deserialize(deserializer)?;
    match crate::facts::parse_rate(&text) {
        Some(r) if r <= Decimal::ONE => Ok(r),
        _ => Err(D::Error::custom(format!(
            "rate {text:?} must be a decimal string between 0 and 1 such as \"0.30\""
        ))),
    }
}

fn parse_date<E: serde::de::Error>(text: &str) -> Result<Date, E> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, format).map_err(|e| E::custom(format!("date {text:?}: {e}")))
}

fn date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
    parse_date(&String::deserialize(deserializer)?)
}

fn optional_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Date>, D::Error> {
    parse_date(&String::deserialize(deserializer)?).map(Some)
}

/// A quota is a positive integer or the word `"none"`; it must be written either way, so a
/// forgotten quota is an error rather than "unlimited".
fn quota<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Count(u32),
        Word(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Count(0) => Err(D::Error::custom("annual_quota 0 would forbid every award")),
        Raw::Count(n) => Ok(Some(n)),
        Raw::Word(w) if w == "none" => Ok(None),
        Raw::Word(w) => Err(D::Error::custom(format!(
            "annual_quota must be a positive integer or \"none\", not {w:?}"
        ))),
    }
}
