//! Boundary words: whether a threshold includes its own number.
//!
//! Chinese legal usage fixes this (民法典 第1259条: "民法所称的'以上''以下''以内''届满'，包括本数；
//! 所称的'不满''超过''以外'，不包括本数"), and the policy writes every threshold with one of these
//! words. The data files name the word next to each number, and measure code compares only through
//! [`Threshold::test`], so no comparison's strictness is decided by whoever typed `>` or `>=`.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// A boundary word as the policy writes it.
///
/// The variants are named by their pinyin so the code reads against the Chinese text; the data
/// files spell the Chinese word itself, and any other word is refused when the file loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum BoundaryWord {
    /// 以上: "at or above", includes the number (≥).
    #[serde(rename = "以上")]
    Yishang,
    /// 及以上: "and above", includes the number (≥).
    #[serde(rename = "及以上")]
    Jiyishang,
    /// 达到: "reaches", includes the number (≥).
    #[serde(rename = "达到")]
    Dadao,
    /// 以下: "at or below", includes the number (≤).
    #[serde(rename = "以下")]
    Yixia,
    /// 以内: "within", includes the number (≤).
    #[serde(rename = "以内")]
    Yinei,
    /// 超过: "exceeds", excludes the number (>).
    #[serde(rename = "超过")]
    Chaoguo,
    /// 超: short for 超过, excludes the number (>).
    #[serde(rename = "超")]
    Chao,
    /// 不满: "short of", excludes the number (<).
    #[serde(rename = "不满")]
    Buman,
}

/// The comparison a boundary word stands for, so traces can show it to readers who don't read
/// the Chinese word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    /// x ≥ threshold.
    AtLeast,
    /// x ≤ threshold.
    AtMost,
    /// x > threshold.
    Above,
    /// x < threshold.
    Below,
}

impl Comparison {
    /// The mathematical symbol, for traces.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::AtLeast => "≥",
            Comparison::AtMost => "≤",
            Comparison::Above => ">",
            Comparison::Below => "<",
        }
    }
}

impl BoundaryWord {
    /// Every word, for error messages and tests.
    pub const ALL: [BoundaryWord; 8] = [
        BoundaryWord::Yishang,
        BoundaryWord::Jiyishang,
        BoundaryWord::Dadao,
        BoundaryWord::Yixia,
        BoundaryWord::Yinei,
        BoundaryWord::Chaoguo,
        BoundaryWord::Chao,
        BoundaryWord::Buman,
    ];

    /// The word as the policy writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            BoundaryWord::Yishang => "以上",
            BoundaryWord::Jiyishang => "及以上",
            BoundaryWord::Dadao => "达到",
            BoundaryWord::Yixia => "以下",
            BoundaryWord::Yinei => "以内",
            BoundaryWord::Chaoguo => "超过",
            BoundaryWord::Chao => "超",
            BoundaryWord::Buman => "不满",
        }
    }

    /// The comparison the word means under 民法典 第1259条.
    pub fn comparison(self) -> Comparison {
        match self {
            BoundaryWord::Yishang | BoundaryWord::Jiyishang | BoundaryWord::Dadao => {
                Comparison::AtLeast
            }
            BoundaryWord::Yixia | BoundaryWord::Yinei => Comparison::AtMost,
            BoundaryWord::Chaoguo | BoundaryWord::Chao => Comparison::Above,
            BoundaryWord::Buman => Comparison::Below,
        }
    }

    /// Whether the number itself satisfies the threshold (含本数), the question the word answers.
    pub fn includes_number(self) -> bool {
        matches!(self.comparison(), Comparison::AtLeast | Comparison::AtMost)
    }
}

impl fmt::Display for BoundaryWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The word was not one of the eight the policy uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown boundary word {0:?} (expected one of 以上, 及以上, 达到, 以下, 以内, 超过, 超, 不满)"
)]
pub struct UnknownBoundaryWord(pub String);

impl FromStr for BoundaryWord {
    type Err = UnknownBoundaryWord;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BoundaryWord::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| UnknownBoundaryWord(s.to_owned()))
    }
}

/// A number and the word that says which side of it qualifies, as one policy phrase
/// ("营业收入2000万元以上").
///
/// Built only from the data files (or by scaling one of theirs, see [`Threshold::scaled`]), so
/// the word always travels with the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold<T> {
    /// The number written in the policy.
    pub value: T,
    /// The word written after (or before) it.
    pub word: BoundaryWord,
}

impl<T: PartialOrd + Copy> Threshold<T> {
    /// Whether `x` meets the threshold as the word reads: 以上/及以上/达到 → x ≥ v,
    /// 以下/以内 → x ≤ v, 超过/超 → x > v, 不满 → x < v.
    pub fn test(&self, x: T) -> bool {
        match self.word.comparison() {
            Comparison::AtLeast => x >= self.value,
            Comparison::AtMost => x <= self.value,
            Comparison::Above => x > self.value,
            Comparison::Below => x < self.value,
        }
    }
}

impl Threshold<Decimal> {
    /// The same word applied to `self.value × base`: a share threshold ("占设备总投资额30%以上")
    /// turned into an amount threshold, exactly, without dividing.
    pub fn scaled(&self, base: Decimal) -> Threshold<Decimal> {
        Threshold {
            value: self.value * base,
            word: self.word,
        }
    }
}

/// How a threshold is written in a data file: `{ value = ..., word = "以上" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold<V> {
    value: V,
    word: BoundaryWord,
}

/// Amount thresholds are written as strings in the money grammar ("20000000.00"), never as TOML
/// floats, so a typo can't silently become a binary fraction.
impl<'de> Deserialize<'de> for Threshold<Decimal> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawThreshold::<String>::deserialize(deserializer)?;
        let value = crate::parse_amount(&raw.value)
            .map_err(|e| D::Error::custom(format!("threshold value {:?} {e}", raw.value)))?;
        Ok(Threshold {
            value,
            word: raw.word,
        })
    }
}

/// Count thresholds (customers, registrations) are TOML integers.
impl<'de> Deserialize<'de> for Threshold<u64> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawThreshold::<u64>::deserialize(deserializer)?;
        Ok(Threshold {
            value: raw.value,
            word: raw.word,
        })
    }
}
