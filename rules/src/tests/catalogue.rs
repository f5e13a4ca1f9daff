//! Loading the data files: the shipped ones load, broken ones are refused loudly, versions are
//! chosen by date, and the voucher program's defaults come from here.

use ring::digest::{digest, SHA256};
use rust_decimal::Decimal;
use time::macros::date;

use crate::{Catalogue, LoadError, MEASURE_IDS};

const FILE_2021: &str = include_str!("../../policy/2021.toml");
const FILE_REVISED: &str = include_str!("../../policy/revised.toml");

fn refused(sources: &[&str]) -> String {
    match Catalogue::from_sources(sources) {
        Ok(_) => panic!("a broken policy file was accepted"),
        Err(LoadError::Parse { message, .. } | LoadError::Invalid { message, .. }) => message,
    }
}

#[test]
fn the_shipped_files_load_with_both_versions() {
    let catalogue = Catalogue::load().expect("shipped policy files load");
    let ids: Vec<&str> = catalogue.versions().iter().map(|v| v.id()).collect();
    assert_eq!(ids, ["2021", "revised"]);
    let [v2021, revised] = catalogue.versions() else {
        unreachable!()
    };
    assert_eq!(v2021.document(), "深宝发〔2021〕1号");
    assert_eq!(v2021.valid_from(), date!(2021 - 03 - 11));
    assert_eq!(v2021.valid_until(), Some(date!(2022 - 03 - 10)));
    assert_eq!(revised.valid_from(), date!(2022 - 03 - 11));
    assert_eq!(revised.valid_until(), None);
}

#[test]
fn each_version_records_the_sha256_of_its_file_text() {
    let catalogue = Catalogue::load().unwrap();
    for (version, text) in catalogue.versions().iter().zip([FILE_2021, FILE_REVISED]) {
        let want: String = digest(&SHA256, text.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(version.hash(), want, "{}", version.id());
        assert_eq!(version.hash().len(), 64);
    }
}

#[test]
fn the_version_in_force_changes_between_2022_03_10_and_2022_03_11() {
    let catalogue = Catalogue::load().unwrap();
    let on = |d| catalogue.version_on(d).map(|v| v.id().to_owned());
    assert_eq!(on(date!(2021 - 03 - 10)), None);
    assert_eq!(on(date!(2021 - 03 - 11)).as_deref(), Some("2021"));
    assert_eq!(on(date!(2022 - 03 - 10)).as_deref(), Some("2021"));
    assert_eq!(on(date!(2022 - 03 - 11)).as_deref(), Some("revised"));
    assert_eq!(on(date!(2099 - 12 - 31)).as_deref(), Some("revised"));
}

#[test]
fn measures_on_lists_each_version_in_catalogue_order() {
    let catalogue = Catalogue::load().unwrap();
    let ids = |d| -> Vec<String> { catalogue.measures_on(d).into_iter().map(|m| m.id).collect() };
    assert_eq!(ids(date!(2022 - 03 - 10)), MEASURE_IDS);
    let revised: Vec<&str> = MEASURE_IDS
        .iter()
        .copied()
        .filter(|m| *m != "key_tech_project")
        .collect();
    assert_eq!(ids(date!(2022 - 03 - 11)), revised);
    assert!(ids(date!(2021 - 03 - 10)).is_empty());
    let pool = catalogue
        .measures_on(date!(2023 - 01 - 01))
        .into_iter()
        .find(|m| m.id == "promotion_center")
        .unwrap();
    assert_eq!((pool.clause.as_str(), pool.annual_quota), ("三(4)", None));
    let json = serde_json::to_value(&pool).unwrap();
    assert_eq!(json["title"], "工业互联网平台应用创新推广中心资助");
}

#[test]
fn cloud_voucher_params_are_the_voucher_programs_defaults() {
    let catalogue = Catalogue::load().unwrap();
    let revised = catalogue
        .cloud_voucher_params(date!(2026 - 01 - 01))
        .unwrap();
    assert_eq!(revised.rate, Decimal::new(30, 2));
    assert_eq!(revised.cap_per_firm.to_string(), "50000.00");
    assert_eq!(revised.firm_quota, Some(2000));
    let v2021 = catalogue
        .cloud_voucher_params(date!(2021 - 06 - 01))
        .unwrap();
    assert_eq!((v2021.rate, v2021.firm_quota), (Decimal::new(30, 2), None));
    assert!(catalogue
        .cloud_voucher_params(date!(2021 - 03 - 10))
        .is_none());
}

#[test]
fn a_file_with_an_unknown_key_is_refused() {
    let top = FILE_REVISED.replace("valid_from =", "valid_since = \"2022-03-11\"\nvalid_from =");
    assert!(refused(&[FILE_2021, &top]).contains("valid_since"));
    let inner = FILE_2021.replace("cap_per_firm =", "cap_per_frim = \"1.00\"\ncap_per_firm =");
    assert!(refused(&[&inner]).contains("cap_per_frim"));
    let measure_level = FILE_2021.replace(
        "title = \"企业上云上平台",
        "tittle = \"x\"\ntitle = \"企业上云上平台",
    );
    assert!(refused(&[&measure_level]).contains("tittle"));
}

#[test]
fn a_file_with_an_unknown_measure_is_refused() {
    let text = format!("{FILE_2021}\n[measures.space_program]\ntitle = \"x\"\n");
    assert!(refused(&[&text]).contains("space_program"));
}

#[test]
fn a_file_with_an_unknown_boundary_word_is_refused() {
    let text = FILE_2021.replace("word = \"超过\"", "word = \"大于\"");
    assert!(refused(&[&text]).contains("大于"));
}

#[test]
fn a_value_that_does_not_parse_is_refused() {
    let bad = [
        ("cap_per_firm = \"50000.00\"", "cap_per_firm = 50000.0"),
        (
            "cap_per_firm = \"50000.00\"",
            "cap_per_firm = \"50000.001\"",
        ),
        ("rate = \"0.30\"", "rate = \"1.30\""),
        ("rate = \"0.30\"", "rate = 0.3"),
        (
            "valid_until = \"2022-03-10\"",
            "valid_until = \"2022-02-30\"",
        ),
        ("value = 3000, word", "value = -3000, word"),
        ("annual_quota = 30", "annual_quota = \"thirty\""),
        ("annual_quota = 30", "annual_quota = 0"),
    ];
    for (good, broken) in bad {
        assert!(FILE_2021.contains(good), "{good}");
        let text = FILE_2021.replacen(good, broken, 1);
        refused(&[&text]);
    }
    let no_quota = FILE_2021.replacen("annual_quota = 30\n", "", 1);
    assert!(refused(&[&no_quota]).contains("annual_quota"));
    refused(&["this is not toml ="]);
}

#[test]
fn inconsistent_files_are_refused() {
    // A tier above the cap.
    let tier = FILE_2021.replace("award = \"5000000.00\" }", "award = \"5000000.01\" }");
    assert!(refused(&[&tier]).contains("cap"));
    // Overlapping versions, and one id twice.
    let overlap =
        FILE_REVISED.replace("valid_from = \"2022-03-11\"", "valid_from = \"2022-03-10\"");
    assert!(refused(&[FILE_2021, &overlap]).contains("overlaps"));
    let twice = FILE_REVISED.replace("id = \"revised\"", "id = \"2021\"");
    assert!(refused(&[FILE_2021, &twice]).contains("twice"));
    let backwards = FILE_2021.replace(
        "valid_until = \"2022-03-10\"",
        "valid_until = \"2021-03-10\"",
    );
    assert!(refused(&[&backwards]).contains("before"));
    refused(&[]);
}

#[test]
fn a_catalogue_can_be_built_from_given_sources() {
    let catalogue = Catalogue::from_sources(&[FILE_REVISED, FILE_2021]).unwrap();
    assert_eq!(
        catalogue.version_on(date!(2022 - 03 - 10)).unwrap().id(),
        "2021"
    );
}
