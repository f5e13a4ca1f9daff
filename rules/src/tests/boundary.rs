//! The boundary words of 民法典 第1259条, each tested at its number and one unit either side.

use rust_decimal::Decimal;

use crate::{BoundaryWord, Comparison, Threshold};

#[test]
fn each_boundary_word_includes_or_excludes_its_number_as_the_civil_code_says() {
    // (word, one below, at, one above)
    let cases = [
        ("以上", false, true, true),
        ("及以上", false, true, true),
        ("达到", false, true, true),
        ("以下", true, true, false),
        ("以内", true, true, false),
        ("超过", false, false, true),
        ("超", false, false, true),
        ("不满", true, false, false),
    ];
    for (text, below, at, above) in cases {
        let word: BoundaryWord = text.parse().unwrap();
        assert_eq!(word.as_str(), text);
        let counts = Threshold {
            value: 3000u64,
            word,
        };
        assert_eq!(
            [counts.test(2999), counts.test(3000), counts.test(3001)],
            [below, at, above],
            "{text} on counts"
        );
        let fen = Decimal::new(1, 2);
        let amount = Threshold {
            value: Decimal::new(2_000_000_000, 2),
            word,
        };
        assert_eq!(
            [
                amount.test(amount.value - fen),
                amount.test(amount.value),
                amount.test(amount.value + fen)
            ],
            [below, at, above],
            "{text} on amounts, one fen either side"
        );
        assert_eq!(word.includes_number(), at, "{text} includes its number");
    }
}

#[test]
fn every_word_maps_to_one_comparison() {
    let at_least = ["以上", "及以上", "达到"];
    let at_most = ["以下", "以内"];
    for word in BoundaryWord::ALL {
        let want = match word.as_str() {
            w if at_least.contains(&w) => Comparison::AtLeast,
            w if at_most.contains(&w) => Comparison::AtMost,
            "超过" | "超" => Comparison::Above,
            _ => Comparison::Below,
        };
        assert_eq!(word.comparison(), want, "{word}");
    }
}

#[test]
fn an_unknown_boundary_word_is_refused() {
    for text in ["以外", "届满", "大于", "", ">="] {
        assert!(text.parse::<BoundaryWord>().is_err(), "{text:?}");
    }
}

#[test]
fn a_share_threshold_scales_exactly_without_dividing() {
    let share = Threshold {
        value: Decimal::new(30, 2),
        word: BoundaryWord::Yishang,
    };
    let scaled = share.scaled(Decimal::new(1_000_000_001, 2));
    assert_eq!(scaled.value.to_string(), "3000000.0030");
    assert!(scaled.test(Decimal::new(300_000_001, 2)));
    assert!(!scaled.test(Decimal::new(300_000_000, 2)));
}
