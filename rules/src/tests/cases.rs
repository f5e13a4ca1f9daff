//! Runs the case tables in `cases/*.toml`: one table per measure, derived from the policy text
//! (each threshold at its number and one fen or one unit either side, each cap just below and
//! above, each version's dates). Every failure is reported with the case's clause and name, all
//! at once.
//!
//! A table has a `measure`, a `clause`, default `dates` and base `facts` (an applicant that
//! qualifies). Each `[[case]]` patches the base (`facts`, `without`) and states what it expects.
//! Besides the written cases, every table is also run with each base fact removed, and with each
//! fact ill-typed, and with an unknown extra fact: each must be refused naming that fact.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Map, Value};
use time::macros::date;
use time::Date;

use crate::{Catalogue, EvalError, Evaluation, MEASURE_IDS};

const TABLES: &[(&str, &str)] = &[
    (
        "innovation_center",
        include_str!("cases/innovation_center.toml"),
    ),
    (
        "standard_setting",
        include_str!("cases/standard_setting.toml"),
    ),
    (
        "key_tech_project",
        include_str!("cases/key_tech_project.toml"),
    ),
    (
        "identifier_node_operator",
        include_str!("cases/identifier_node_operator.toml"),
    ),
    (
        "identifier_node_matching",
        include_str!("cases/identifier_node_matching.toml"),
    ),
    (
        "industry_platform",
        include_str!("cases/industry_platform.toml"),
    ),
    (
        "professional_platform",
        include_str!("cases/professional_platform.toml"),
    ),
    (
        "cross_industry_platform",
        include_str!("cases/cross_industry_platform.toml"),
    ),
    (
        "cross_industry_relocation",
        include_str!("cases/cross_industry_relocation.toml"),
    ),
    (
        "promotion_center",
        include_str!("cases/promotion_center.toml"),
    ),
    ("resource_pool", include_str!("cases/resource_pool.toml")),
    ("cloud_voucher", include_str!("cases/cloud_voucher.toml")),
    (
        "identifier_adoption",
        include_str!("cases/identifier_adoption.toml"),
    ),
    (
        "application_benchmark",
        include_str!("cases/application_benchmark.toml"),
    ),
    (
        "equipment_upgrade",
        include_str!("cases/equipment_upgrade.toml"),
    ),
    (
        "smart_manufacturing_benchmark",
        include_str!("cases/smart_manufacturing_benchmark.toml"),
    ),
    ("park_5g", include_str!("cases/park_5g.toml")),
    ("cluster_pilot", include_str!("cases/cluster_pilot.toml")),
    (
        "guide_fund_equity",
        include_str!("cases/guide_fund_equity.toml"),
    ),
    (
        "equity_investment",
        include_str!("cases/equity_investment.toml"),
    ),
    (
        "financing_facilitation",
        include_str!("cases/financing_facilitation.toml"),
    ),
    ("training_base", include_str!("cases/training_base.toml")),
    ("association", include_str!("cases/association.toml")),
];

/// The last day of `2021`; the day after is `revised`.
const LAST_DAY_OF_2021_VERSION: Date = date!(2022 - 03 - 10);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    measure: String,
    clause: String,
    dates: Vec<String>,
    facts: toml::Table,
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    clause: Option<String>,
    dates: Option<Vec<String>>,
    #[serde(default)]
    facts: toml::Table,
    #[serde(default)]
    without: Vec<String>,
    eligible: Option<bool>,
    award: Option<String>,
    /// `"none"` or a number.
    quota: Option<toml::Value>,
    /// `missing_fact`, `invalid_fact` or `not_in_force`.
    error: Option<String>,
    fact: Option<String>,
    /// Substrings the joined trace must contain.
    #[serde(default)]
    trace: Vec<String>,
    /// Substrings the joined trace must not contain.
    #[serde(default)]
    trace_lacks: Vec<String>,
}

fn parse_date(text: &str) -> Date {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, format).unwrap_or_else(|e| panic!("bad date {text:?} in a case table: {e}"))
}

fn to_json(table: &toml::Table) -> Map<String, Value> {
    match serde_json::to_value(table).expect("TOML converts to JSON") {
        Value::Object(map) => map,
        _ => unreachable!("a TOML table is a JSON object"),
    }
}

fn trace_text(eval: &Evaluation) -> String {
    eval.trace
        .iter()
        .map(|s| format!("[{}] {} = {}", s.clause, s.step, s.value))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks one evaluation against a case; returns what went wrong.
fn check(
    catalogue: &Catalogue,
    table: &Table,
    case: &Case,
    day: Date,
    facts: &Value,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let result = catalogue.evaluate(&table.measure, day, facts);
    if let Some(kind) = &case.error {
        let fact = case.fact.clone().unwrap_or_default();
        let ok = match (kind.as_str(), &result) {
            ("missing_fact", Err(EvalError::MissingFact(f))) => *f == fact,
            ("invalid_fact", Err(EvalError::InvalidFact { fact: f, .. })) => *f == fact,
            ("not_in_force", Err(EvalError::NotInForce { measure, date })) => {
                *measure == table.measure && *date == day
            }
            _ => false,
        };
        if !ok {
            wrong.push(format!("expected {kind} {fact:?}, got {result:?}"));
        }
        return wrong;
    }
    let eval = match result {
        Ok(eval) => eval,
        Err(e) => return vec![format!("expected an evaluation, got error {e:?}")],
    };
    let version = catalogue
        .version_on(day)
        .expect("a version is in force on every case date");
    let want_version = if day <= LAST_DAY_OF_2021_VERSION {
        "2021"
    } else {
        "revised"
    };
    if eval.policy_version != want_version || eval.params_hash != version.hash() {
        wrong.push(format!(
            "version {} / hash {}",
            eval.policy_version, eval.params_hash
        ));
    }
    if let Some(eligible) = case.eligible {
        if eval.eligible != eligible {
            wrong.push(format!("eligible {} (want {eligible})", eval.eligible));
        }
    }
    if let Some(award) = &case.award {
        if eval.award.to_string() != *award || eval.award.scale() != 2 {
            wrong.push(format!("award {} (want {award})", eval.award));
        }
    }
    if !eval.eligible && eval.award != Decimal::ZERO {
        wrong.push(format!("not eligible but award {}", eval.award));
    }
    if let Some(quota) = &case.quota {
        let want = quota.as_integer().and_then(|q| u32::try_from(q).ok());
        if eval.annual_quota != want {
            wrong.push(format!(
                "annual_quota {:?} (want {quota:?})",
                eval.annual_quota
            ));
        }
    }
    let first = eval.trace.first();
    if !first.is_some_and(|s| s.step.starts_with("条文 clause") && !s.value.is_empty()) {
        wrong.push("the trace does not start by quoting the clause".to_owned());
    }
    if let Some(step) = eval.trace.iter().find(|s| s.clause != table.clause) {
        wrong.push(format!("trace step under clause {:?}", step.clause));
    }
    let text = trace_text(&eval);
    for needle in &case.trace {
        if !text.contains(needle.as_str()) {
            wrong.push(format!("trace lacks {needle:?}"));
        }
    }
    for needle in &case.trace_lacks {
        if text.contains(needle.as_str()) {
            wrong.push(format!("trace contains {needle:?}"));
        }
    }
    if !wrong.is_empty() {
        wrong.push(format!("trace:\n{text}"));
    }
    wrong
}

/// The ill-typed variants of a well-typed base fact.
fn ill_typed(value: &Value) -> Vec<Value> {
    let mut bad = vec![Value::Null, Value::Array(Vec::new())];
    match value {
        Value::String(s) => {
            bad.push(serde_json::json!(1000));
            bad.push(Value::String(format!("{s}1")));
            bad.push(Value::String("-1.00".to_owned()));
            bad.push(Value::String("1.001".to_owned()));
        }
        Value::Number(_) => {
            bad.push(serde_json::json!(-1));
            bad.push(serde_json::json!(1.5));
            bad.push(serde_json::json!("3000"));
        }
        Value::Bool(_) => {
            bad.push(serde_json::json!("true"));
            bad.push(serde_json::json!(1));
        }
        _ => {}
    }
    bad
}

#[test]
fn every_measure_case_table_holds_on_every_date_it_names() {
    let catalogue = Catalogue::load().expect("shipped policy files load");
    let listed: Vec<&str> = TABLES.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        listed, MEASURE_IDS,
        "one case table per measure, in catalogue order"
    );

    let mut failures = Vec::new();
    let mut runs = 0;
    for (file, text) in TABLES {
        let table: Table = toml::from_str(text)
            .unwrap_or_else(|e| panic!("cases/{file}.toml does not parse: {e}"));
        assert_eq!(
            table.measure, *file,
            "cases/{file}.toml names another measure"
        );
        let base = to_json(&table.facts);
        for case in &table.case {
            let clause = case.clause.as_deref().unwrap_or(&table.clause);
            let mut facts = base.clone();
            facts.extend(to_json(&case.facts));
            for name in &case.without {
                facts.remove(name);
            }
            let facts = Value::Object(facts);
            for day in case.dates.as_ref().unwrap_or(&table.dates) {
                runs += 1;
                for wrong in check(&catalogue, &table, case, parse_date(day), &facts) {
                    failures.push(format!(
                        "[{clause}] {} / {}, {day}: {wrong}",
                        table.measure, case.name
                    ));
                }
            }
        }
        // Each base fact missing, then ill-typed; then one fact too many.
        let day = parse_date(&table.dates[0]);
        for (name, value) in &base {
            let mut variants = vec![("missing_fact", None)];
            variants.extend(
                ill_typed(value)
                    .into_iter()
                    .map(|v| ("invalid_fact", Some(v))),
            );
            for (kind, replacement) in variants {
                let mut facts = base.clone();
                match &replacement {
                    Some(v) => facts.insert(name.clone(), v.clone()),
                    None => facts.remove(name),
                };
                let case = Case {
                    name: format!(
                        "{name} {}",
                        replacement.map_or("absent".to_owned(), |v| v.to_string())
                    ),
                    clause: None,
                    dates: None,
                    facts: toml::Table::new(),
                    without: Vec::new(),
                    eligible: None,
                    award: None,
                    quota: None,
                    error: Some(kind.to_owned()),
                    fact: Some(name.clone()),
                    trace: Vec::new(),
                    trace_lacks: Vec::new(),
                };
                runs += 1;
                for wrong in check(&catalogue, &table, &case, day, &Value::Object(facts)) {
                    failures.push(format!(
                        "[{}] {} / {}: {wrong}",
                        table.clause, table.measure, case.name
                    ));
                }
            }
        }
        let mut extra = base.clone();
        extra.insert("unexpected_fact".to_owned(), Value::Bool(true));
        runs += 1;
        match catalogue.evaluate(&table.measure, day, &Value::Object(extra)) {
            Err(EvalError::InvalidFact { fact, reason })
                if fact == "unexpected_fact" && reason.contains("unknown fact") => {}
            other => failures.push(format!(
                "[{}] {}: an unknown fact must be refused, got {other:?}",
                table.clause, table.measure
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} case runs failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
