//! The short code printed beside the QR (`BA26-7KQM-PX3D`), for typing at a till.

use ring::rand::{SecureRandom, SystemRandom};

/// 31 characters without the look-alikes 0/O, 1/I/L.
const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// A random code for a voucher of `year`; the database's unique constraint decides collisions
/// (31^8 ≈ 8.5 × 10^11 codes a year).
pub fn generate(year: i32) -> String {
    let rng = SystemRandom::new();
    let mut out = format!("BA{:02}-", year.rem_euclid(100));
    let mut written = 0;
    while written < 8 {
        let mut byte = [0u8; 1];
        if rng.fill(&mut byte).is_err() {
            continue;
        }
        // Rejection sampling keeps every character equally likely.
        if byte[0] >= 248 {
            continue;
        }
        out.push(char::from(ALPHABET[usize::from(byte[0] % 31)]));
        written += 1;
        if written == 4 {
            out.push('-');
        }
    }
    out
}

/// Normalises what a person typed: upper case, no spaces; `None` when it cannot be a code.
pub fn normalise(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let bytes = code.as_bytes();
    let ok = bytes.len() == 14
        && bytes.starts_with(b"BA")
        && bytes[2].is_ascii_digit()
        && bytes[3].is_ascii_digit()
        && bytes[4] == b'-'
        && bytes[9] == b'-'
        && bytes[5..9]
            .iter()
            .chain(&bytes[10..14])
            .all(|b| ALPHABET.contains(b));
    ok.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_have_the_documented_form() {
        for _ in 0..200 {
            let code = generate(2026);
            assert!(code.starts_with("BA26-"), "{code}");
            assert_eq!(normalise(&code).as_deref(), Some(code.as_str()));
            assert!(!code[5..].contains(['0', 'O', '1', 'I', 'L']), "{code}");
        }
    }

    #[test]
    fn typed_codes_are_normalised_or_refused() {
        assert_eq!(
            normalise(" ba26-7kqm-px3d ").as_deref(),
            Some("BA26-7KQM-PX3D")
        );
        assert_eq!(normalise("BA26-7KQM-PX3O"), None);
        assert_eq!(normalise("BA26-7KQMPX3D"), None);
    }
}
