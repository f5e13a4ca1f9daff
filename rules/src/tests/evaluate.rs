//! The evaluation entry point: errors the HTTP layer maps to 404 and 422, and the JSON shape.

use serde_json::json;
use time::macros::date;

use crate::{Catalogue, EvalError, MEASURE_IDS};

#[test]
fn an_unknown_measure_is_refused_as_unknown() {
    let catalogue = Catalogue::load().unwrap();
    let err = catalogue
        .evaluate("moon_landing", date!(2023 - 01 - 01), &json!({}))
        .unwrap_err();
    assert_eq!(err, EvalError::UnknownMeasure("moon_landing".to_owned()));
    assert_eq!(err.fact(), None);
}

#[test]
fn no_measure_is_in_force_before_2021_03_11() {
    let catalogue = Catalogue::load().unwrap();
    for id in MEASURE_IDS {
        let err = catalogue
            .evaluate(id, date!(2021 - 03 - 10), &json!({}))
            .unwrap_err();
        assert!(matches!(err, EvalError::NotInForce { .. }), "{id}: {err:?}");
    }
}

#[test]
fn key_tech_project_is_not_in_force_from_2022_03_11() {
    let catalogue = Catalogue::load().unwrap();
    let facts = json!({"actual_investment": "100.00"});
    assert!(catalogue
        .evaluate("key_tech_project", date!(2022 - 03 - 10), &facts)
        .is_ok());
    let err = catalogue
        .evaluate("key_tech_project", date!(2022 - 03 - 11), &facts)
        .unwrap_err();
    assert_eq!(
        err,
        EvalError::NotInForce {
            measure: "key_tech_project".to_owned(),
            date: date!(2022 - 03 - 11)
        }
    );
}

#[test]
fn facts_that_are_not_an_object_are_refused_naming_facts() {
    let catalogue = Catalogue::load().unwrap();
    for facts in [json!([]), json!("x"), json!(null), json!(3)] {
        let err = catalogue
            .evaluate("park_5g", date!(2023 - 01 - 01), &facts)
            .unwrap_err();
        assert_eq!(err.fact(), Some("facts"), "{facts}");
    }
}

#[test]
fn an_evaluation_serializes_with_the_award_as_a_two_decimal_string() {
    let catalogue = Catalogue::load().unwrap();
    let day = date!(2023 - 01 - 01);
    let eval = catalogue
        .evaluate("park_5g", day, &json!({"selected": false}))
        .unwrap();
    let value = serde_json::to_value(&eval).unwrap();
    assert_eq!(value["award"], "0.00");
    assert_eq!(value["eligible"], false);
    assert_eq!(value["policy_version"], "revised");
    assert_eq!(
        value["params_hash"],
        catalogue.version_on(day).unwrap().hash()
    );
    assert_eq!(value["annual_quota"], 5);
    assert_eq!(value["measure"], "park_5g");
    let step = &value["trace"][0];
    assert_eq!(step["clause"], "七(2)");
    assert!(step["value"].as_str().unwrap().contains("应用示范园区"));

    let eval = catalogue
        .evaluate("park_5g", day, &json!({"selected": true}))
        .unwrap();
    assert_eq!(serde_json::to_value(&eval).unwrap()["award"], "1000000.00");
}

#[test]
fn the_trace_quotes_the_clause_and_shows_each_threshold_with_its_word() {
    let catalogue = Catalogue::load().unwrap();
    let facts = json!({
        "annual_transaction_volume": "999999999.99",
        "customers": 3000,
        "platform_service_revenue": "20000000.00",
    });
    let eval = catalogue
        .evaluate("industry_platform", date!(2021 - 06 - 01), &facts)
        .unwrap();
    assert!(!eval.eligible);
    assert!(eval.trace[0].value.contains("分级分层给予最高500万元奖励"));
    let volume = eval
        .trace
        .iter()
        .find(|s| s.step.contains("annual_transaction_volume"))
        .unwrap();
    assert!(
        volume.step.contains("以上 1000000000.00"),
        "{}",
        volume.step
    );
    assert!(volume.value.starts_with("999999999.99"), "{}", volume.value);
    assert!(volume.value.contains("不符合"), "{}", volume.value);
    let last = eval.trace.last().unwrap();
    assert!(last.value.contains("not eligible") && last.value.contains("0.00"));
}

#[test]
fn an_unknown_fact_is_named_in_the_error() {
    let catalogue = Catalogue::load().unwrap();
    let facts = json!({"annual_fee": "100.00", "granted_this_year": "0.00", "anual_fee": "1.00"});
    let err = catalogue
        .evaluate("cloud_voucher", date!(2023 - 01 - 01), &facts)
        .unwrap_err();
    assert_eq!(err.fact(), Some("anual_fee"));
    assert!(err.to_string().contains("unknown fact"), "{err}");
}
