//! Who may claim (SPEC §2, "Firm eligibility").

/// The district the program serves.
pub const DISTRICT: &str = "宝安区";

/// GB/T 4754-2017 section C (manufacturing) spans divisions 13 to 43.
const MANUFACTURING_DIVISIONS: std::ops::RangeInclusive<u32> = 13..=43;

/// Whether an industry code (`C3911`, `C39`, ...) is in form: a section letter A–T and a
/// two-digit division, optionally the group and class digits.
pub fn industry_code_is_well_formed(code: &str) -> bool {
    let bytes = code.as_bytes();
    (3..=5).contains(&bytes.len())
        && (b'A'..=b'T').contains(&bytes[0])
        && bytes[1..].iter().all(u8::is_ascii_digit)
}

/// A firm is eligible when it manufactures (section C, divisions 13–43) and is registered in
/// 宝安区.
pub fn is_eligible(industry_code: &str, district: &str) -> bool {
    let manufacturing = industry_code_is_well_formed(industry_code)
        && industry_code.starts_with('C')
        && industry_code[1..3]
            .parse::<u32>()
            .is_ok_and(|division| MANUFACTURING_DIVISIONS.contains(&division));
    manufacturing && district == DISTRICT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eligibility_follows_section_c_and_the_district() {
        // SPEC §2: GB/T 4754-2017 section C (divisions 13–43) and registered in 宝安区.
        let cases = [
            ("C3911", "宝安区", true, "computer manufacturing in Bao'an"),
            ("C13", "宝安区", true, "first manufacturing division"),
            ("C4390", "宝安区", true, "last manufacturing division"),
            ("C1200", "宝安区", false, "division 12 is not manufacturing"),
            ("C4400", "宝安区", false, "division 44 is not manufacturing"),
            ("I6510", "宝安区", false, "software is section I"),
            ("C3911", "南山区", false, "another district"),
            ("C3911", "宝安", false, "district must be written in full"),
        ];
        for (code, district, want, why) in cases {
            assert_eq!(is_eligible(code, district), want, "{why}");
        }
    }

    #[test]
    fn industry_codes_are_checked_for_form() {
        for ok in ["C3911", "C39", "C391", "A01"] {
            assert!(industry_code_is_well_formed(ok), "{ok}");
        }
        for bad in ["c3911", "C", "C3", "C39111", "Z3911", "3911", "C39A1"] {
            assert!(!industry_code_is_well_formed(bad), "{bad}");
        }
    }
}
