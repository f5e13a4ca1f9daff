//! Reading an applicant's facts from JSON, strictly.
//!
//! Facts arrive from HTTP and the CLI as a JSON object. Each has one type (MEASURES.md, "Common
//! rules"): amounts are strings in the money grammar (a JSON number is refused: no floats, ever),
//! rates are decimal strings, counts are non-negative integers, flags are booleans, enums are
//! strings from a fixed set. A fact the measure doesn't know is refused too, so a misspelt name
//! can't quietly leave the real one missing or be ignored.

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::error::EvalError;

/// The facts object of one evaluation, checked against the measure's fact names.
pub(crate) struct Facts<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Facts<'a> {
    /// Accepts `value` if it is an object whose keys are all among `known`.
    pub(crate) fn new(value: &'a Value, known: &[&str]) -> Result<Self, EvalError> {
        let Value::Object(map) = value else {
            return Err(EvalError::invalid("facts", "must be a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(EvalError::invalid(
                unknown,
                format!(
                    "unknown fact for this measure (expected: {})",
                    known.join(", ")
                ),
            ));
        }
        Ok(Facts { map })
    }

    fn get(&self, name: &str) -> Result<&'a Value, EvalError> {
        self.map
            .get(name)
            .ok_or_else(|| EvalError::MissingFact(name.to_owned()))
    }

    /// An amount in CNY: a string such as `"20000000.00"` (API.md money grammar).
    pub(crate) fn amount(&self, name: &str) -> Result<Decimal, EvalError> {
        match self.get(name)? {
            Value::String(text) => crate::parse_amount(text)
                .map_err(|e| EvalError::invalid(name, format!("amount {text:?} {e}"))),
            other => Err(EvalError::invalid(
                name,
                format!(
                    "must be an amount string such as \"1000.00\", not {}",
                    kind(other)
                ),
            )),
        }
    }

    /// A rate: a decimal string such as `"0.25"` with at most four decimals.
    pub(crate) fn rate(&self, name: &str) -> Result<Decimal, EvalError> {
        match self.get(name)? {
            Value::String(text) => parse_rate(text).ok_or_else(|| {
                EvalError::invalid(
                    name,
                    format!(
                    "rate {text:?} must be a decimal string such as \"0.25\" (at most 4 decimals)"
                ),
                )
            }),
            other => Err(EvalError::invalid(
                name,
                format!(
                    "must be a rate string such as \"0.25\", not {}",
                    kind(other)
                ),
            )),
        }
    }

    /// A count: a non-negative JSON integer.
    pub(crate) fn count(&self, name: &str) -> Result<u64, EvalError> {
        let value = self.get(name)?;
        value.as_u64().ok_or_else(|| {
            EvalError::invalid(
                name,
                format!("must be a non-negative integer, not {}", kind(value)),
            )
        })
    }

    /// A flag: a JSON boolean (not `"true"`, not `1`).
    pub(crate) fn flag(&self, name: &str) -> Result<bool, EvalError> {
        let value = self.get(name)?;
        value.as_bool().ok_or_else(|| {
            EvalError::invalid(name, format!("must be true or false, not {}", kind(value)))
        })
    }

    /// One of a fixed set of strings, mapped to what the measure needs for it.
    pub(crate) fn choice<T: Copy>(
        &self,
        name: &str,
        options: &[(&'static str, T)],
    ) -> Result<T, EvalError> {
        let value = self.get(name)?;
        let refuse = || {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            EvalError::invalid(
                name,
                format!("must be one of {}, not {}", names.join(", "), kind(value)),
            )
        };
        let text = value.as_str().ok_or_else(refuse)?;
        options
            .iter()
            .find(|(n, _)| *n == text)
            .map(|(_, v)| *v)
            .ok_or_else(refuse)
    }
}

/// Describes a JSON value for error messages without echoing long input back.
fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the JSON number {n}"),
        Value::String(s) if s.chars().count() <= 32 => format!("the string {s:?}"),
        Value::String(_) => "a long string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// Parses a rate written `^[0-9]{1,3}(\.[0-9]{1,4})?$`: exact, never through a float.
pub(crate) fn parse_rate(text: &str) -> Option<Decimal> {
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = digits(int_part)
        && int_part.len() <= 3
        && frac_part.is_none_or(|f| digits(f) && f.len() <= 4);
    if !ok {
        return None;
    }
    Decimal::from_str_exact(text).ok()
}
