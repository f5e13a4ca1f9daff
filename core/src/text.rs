//! Where text from a request is accepted (API.md, Conventions, "Text fields"): trimmed, and
//! refused with 422 naming the field when it holds a control character, a bidirectional
//! override or isolate, or nothing visible. And how invoice and contract numbers are
//! normalised before uniqueness is decided, so look-alikes are one number.

use unicode_normalization::UnicodeNormalization;

use crate::error::ApiError;

/// C0 and C1 controls (U+0000–U+001F, U+007F–U+009F).
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Characters that show nothing: Unicode format characters (zero-width spaces and joiners,
/// marks, the BOM, tags), variation selectors and fillers.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
        | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
        | '\u{ffa0}' | '\u{fff0}'..='\u{fff8}' | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e0fff}')
}

/// A required text field: trimmed, at most `max` characters, no control or bidi character,
/// something visible.
pub fn required(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    // Only white space that is not also a control character is trimmed: a NEL (U+0085) or a
    // tab at the end is refused, not hidden.
    let trimmed = value.trim_matches(|c: char| c.is_whitespace() && !is_control(c));
    if let Some(c) = trimmed.chars().find(|c| is_control(*c)) {
        return Err(ApiError::validation(
            field,
            format!("contains the control character U+{:04X}", u32::from(c)),
        ));
    }
    if trimmed.chars().any(is_bidi_control) {
        return Err(ApiError::validation(
            field,
            "contains a bidirectional override or isolate",
        ));
    }
    if !trimmed
        .chars()
        .any(|c| !c.is_whitespace() && !is_invisible(c))
    {
        return Err(ApiError::validation(field, "is required"));
    }
    if trimmed.chars().count() > max {
        return Err(ApiError::validation(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// An optional text field: `None` stays `None`, a value must pass [`required`].
pub fn optional(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    value.map(|v| required(field, v, max)).transpose()
}

/// The form of an invoice or contract number that uniqueness is decided on: NFKC (full-width
/// forms to ASCII, compatibility characters folded), Unicode format characters removed, every
/// dash or minus sign as `-`, white space removed. `INV-X`, `INV‑X` (non-breaking hyphen),
/// `ＩＮＶ－Ｘ` and `INV-X` with a zero-width space or a BOM are one invoice.
pub fn reference_key(value: &str) -> String {
    value
        .nfkc()
        .filter(|c| !is_invisible(*c) && !c.is_whitespace())
        .map(|c| match c {
            '\u{2010}'..='\u{2015}'
            | '\u{2212}'
            | '\u{fe58}'
            | '\u{fe63}'
            | '\u{ff0d}'
            | '\u{2043}' => '-',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_refused_naming_the_field() {
        let cases = [
            ("a\u{0}b", "NUL"),
            ("\u{1b}[31mred", "ANSI escape"),
            ("name\u{85}", "C1 control"),
            ("abc\u{202e}cba", "right-to-left override"),
            ("x\u{2067}y", "isolate"),
            ("\u{200b}\u{200c}\u{feff}", "only zero-width characters"),
            ("   ", "only spaces"),
            ("", "empty"),
        ];
        for (value, why) in cases {
            let err = required("name", value, 200).unwrap_err();
            assert!(err.detail().starts_with("name:"), "{why}");
        }
        assert_eq!(required("name", "  宝安精密  ", 200).unwrap(), "宝安精密");
        assert!(required("name", "abcd", 3).is_err(), "too long");
    }

    #[test]
    fn look_alike_invoice_numbers_are_one() {
        let base = reference_key("INV-X");
        for (variant, why) in [
            ("INV-X\u{200b}", "zero-width space"),
            ("\u{feff}INV-X", "BOM"),
            ("INV\u{2011}X", "non-breaking hyphen"),
            ("INV\u{2013}X", "en dash"),
            ("INV\u{2212}X", "minus sign"),
            ("ＩＮＶ－Ｘ", "full-width"),
            (" INV-X ", "spaces"),
        ] {
            assert_eq!(reference_key(variant), base, "{why}");
        }
        assert_ne!(reference_key("INV-Y"), base);
        assert_ne!(reference_key("inv-x"), base, "case is kept");
    }
}
