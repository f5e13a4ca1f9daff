//! `Uscc`: the Unified Social Credit Code (统一社会信用代码), GB 32100-2015.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The 31 characters GB 32100-2015 allows: digits and capitals without I, O, S, V, Z.
const CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of positions 1..=17: 3^(i−1) mod 31 (GB 32100-2015, 附录 B).
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Weights of the organisation code's eight body characters (GB 11714-1997).
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// A firm's 18-character code, valid by construction: charset, the code's own check digit
/// (position 18) and the embedded organisation code's check digit (position 17).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Uscc(String);

/// Why a string is not a USCC; the message is shown to the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsccError {
    /// Not 18 characters.
    #[error("must be 18 characters, got {0}")]
    Length(usize),
    /// A character outside the 31-character set (lower case, I, O, S, V, Z, punctuation).
    #[error("character {character:?} at position {position} is not allowed (digits and capitals except I, O, S, V, Z)")]
    Character {
        /// The offending character.
        character: char,
        /// 1-based position.
        position: usize,
    },
    /// The organisation code (positions 9–17) fails its GB 11714 check digit.
    #[error("the organisation code (positions 9-17) has a wrong check digit")]
    OrganisationCheck,
    /// Position 18 does not match the GB 32100 check computed from positions 1–17.
    #[error("check digit (position 18) should be {expected:?}")]
    CheckDigit {
        /// What position 18 should be.
        expected: char,
    },
}

impl Uscc {
    /// Parses and checks a USCC exactly as typed (no trimming, no upper-casing: the portal does
    /// that before sending, so a stored code is always the canonical form).
    pub fn parse(text: &str) -> Result<Uscc, UsccError> {
        let chars: Vec<char> = text.chars().collect();
        if chars.len() != 18 {
            return Err(UsccError::Length(chars.len()));
        }
        let mut values = [0u32; 18];
        for (i, &c) in chars.iter().enumerate() {
            values[i] = charset_value(c).ok_or(UsccError::Character {
                character: c,
                position: i + 1,
            })?;
        }
        if !organisation_code_is_valid(&chars[8..17]) {
            return Err(UsccError::OrganisationCheck);
        }
        let sum: u32 = values[..17]
            .iter()
            .zip(USCC_WEIGHTS)
            .map(|(v, w)| v * w)
            .sum();
        let check = (31 - sum % 31) % 31;
        if values[17] != check {
            return Err(UsccError::CheckDigit {
                expected: char::from(CHARSET[check as usize]),
            });
        }
        Ok(Uscc(text.to_owned()))
    }

    /// Completes a code from its 8-character registration part (registration authority, type,
    /// division code) and the organisation code's 8 body characters, computing both check
    /// digits. For demo data and tests, which need many valid codes that belong to no real firm.
    pub fn with_check_digits(registration: &str, organisation: &str) -> Result<Uscc, UsccError> {
        let mut org: Vec<char> = organisation.chars().collect();
        if registration.chars().count() != 8 || org.len() != 8 {
            return Err(UsccError::Length(
                registration.chars().count() + org.len() + 2,
            ));
        }
        let mut sum = 0;
        for (&c, w) in org.iter().zip(ORG_WEIGHTS) {
            sum += c.to_digit(36).unwrap_or(0) * w;
        }
        org.push(match 11 - sum % 11 {
            10 => 'X',
            11 => '0',
            d => char::from_digit(d, 10).unwrap_or('0'),
        });
        let body: String = registration.chars().chain(org).collect();
        let mut total = 0;
        for (c, w) in body.chars().zip(USCC_WEIGHTS) {
            total += charset_value(c).ok_or(UsccError::Character {
                character: c,
                position: 0,
            })? * w;
        }
        let check = char::from(CHARSET[((31 - total % 31) % 31) as usize]);
        Uscc::parse(&format!("{body}{check}"))
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn charset_value(c: char) -> Option<u32> {
    let byte = u8::try_from(c).ok()?;
    CHARSET.iter().position(|&x| x == byte).map(|p| p as u32)
}

/// GB 11714-1997: C9 = 11 − (Σ Ci × Wi mod 11), 10 → `X`, 11 → `0`; letters count A = 10 … Z = 35.
fn organisation_code_is_valid(code: &[char]) -> bool {
    let mut sum = 0;
    for (&c, w) in code[..8].iter().zip(ORG_WEIGHTS) {
        let Some(v) = c.to_digit(36) else {
            return false;
        };
        sum += v * w;
    }
    let expected = match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        d => char::from_digit(d, 10).unwrap_or('?'),
    };
    code[8] == expected
}

impl fmt::Display for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uscc({})", self.0)
    }
}

impl TryFrom<String> for Uscc {
    type Error = UsccError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Uscc::parse(&value)
    }
}

impl From<Uscc> for String {
    fn from(value: Uscc) -> Self {
        value.0
    }
}

impl utoipa::PartialSchema for Uscc {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9A-HJ-NPQRTUWXY]{18}$"))
            .description(Some(
                "统一社会信用代码 (GB 32100-2015), check digits verified",
            ))
            .examples([serde_json::json!("914403001922038216")])
            .into()
    }
}

impl utoipa::ToSchema for Uscc {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_codes_are_accepted() {
        // Codes as published in the national enterprise credit information system.
        let cases = [
            ("914403001922038216", "华为技术有限公司"),
            ("91440300708461136T", "深圳市腾讯计算机系统有限公司"),
            ("91330100799655058B", "阿里巴巴（中国）有限公司"),
            ("91440300192317458F", "比亚迪股份有限公司"),
            ("91110108551385082Q", "北京小米科技有限责任公司"),
        ];
        for (code, firm) in cases {
            assert!(Uscc::parse(code).is_ok(), "{firm}: {code} should be valid");
        }
    }

    #[test]
    fn malformed_codes_are_refused_with_the_reason() {
        use UsccError::*;
        let cases: &[(&str, UsccError, &str)] = &[
            (
                "914403001922038217",
                CheckDigit { expected: '6' },
                "flipped check digit",
            ),
            (
                "91440300708461136Y",
                CheckDigit { expected: 'T' },
                "flipped check letter",
            ),
            (
                "914403001922038226",
                OrganisationCheck,
                "organisation check digit changed",
            ),
            (
                "91440300708461136t",
                Character {
                    character: 't',
                    position: 18,
                },
                "lower case",
            ),
            (
                "91330100799655058b",
                Character {
                    character: 'b',
                    position: 18,
                },
                "lower case",
            ),
            (
                "9144030019220382I6",
                Character {
                    character: 'I',
                    position: 17,
                },
                "letter I",
            ),
            (
                "9144030019220382O6",
                Character {
                    character: 'O',
                    position: 17,
                },
                "letter O",
            ),
            (
                "S14403001922038216",
                Character {
                    character: 'S',
                    position: 1,
                },
                "letter S",
            ),
            (
                "V14403001922038216",
                Character {
                    character: 'V',
                    position: 1,
                },
                "letter V",
            ),
            (
                "Z14403001922038216",
                Character {
                    character: 'Z',
                    position: 1,
                },
                "letter Z",
            ),
            ("91440300192203821", Length(17), "17 characters"),
            ("9144030019220382166", Length(19), "19 characters"),
            ("", Length(0), "empty"),
            (
                "91440300-922038216",
                Character {
                    character: '-',
                    position: 9,
                },
                "punctuation",
            ),
            (
                "９14403001922038216",
                Character {
                    character: '９',
                    position: 1,
                },
                "full-width digit",
            ),
        ];
        for (code, want, what) in cases {
            assert_eq!(Uscc::parse(code).as_ref(), Err(want), "{what}: {code}");
        }
    }

    #[test]
    fn check_digits_are_completed_like_published_codes() {
        let huawei = Uscc::with_check_digits("91440300", "19220382").unwrap();
        assert_eq!(huawei.as_str(), "914403001922038216");
        let tencent = Uscc::with_check_digits("91440300", "70846113").unwrap();
        assert_eq!(tencent.as_str(), "91440300708461136T");
    }

    #[test]
    fn a_code_round_trips_through_json_as_a_string() {
        let u: Uscc = serde_json::from_str(r#""914403001922038216""#).unwrap();
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            r#""914403001922038216""#
        );
        assert!(serde_json::from_str::<Uscc>(r#""914403001922038217""#).is_err());
    }
}
