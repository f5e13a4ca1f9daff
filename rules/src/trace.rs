//! The evaluation's answer and its trace, written for the bureau reviewer.
//!
//! A reviewer must be able to check an award against the policy text without reading code, so
//! every step cites its clause, quotes the Chinese, and shows the numbers: each threshold with
//! the applicant's value, the boundary word and whether it was met; each cap and ceiling with
//! whether it bound. Labels are bilingual (Chinese first, the JSON fact name after).

use std::fmt::Display;

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use crate::boundary::Threshold;
use crate::floor_fen;

/// One line of the trace: which clause, what was checked or computed, and the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceStep {
    /// The clause the step applies, e.g. `三(1)`.
    pub clause: String,
    /// What the step checks or computes, with the policy's words.
    pub step: String,
    /// The numbers and the outcome.
    pub value: String,
}

/// The result of evaluating one measure for one applicant on one date: what the HTTP layer
/// returns and the award register records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// The measure id.
    pub measure: String,
    /// The policy version applied (`2021` or `revised`).
    pub policy_version: String,
    /// SHA-256 (hex) of the data file the parameters came from, so a recorded award can be tied
    /// to the exact parameters that produced it.
    pub params_hash: String,
    /// Whether every condition of the measure is met.
    pub eligible: bool,
    /// The award in CNY, scale 2; `0.00` when not eligible.
    #[serde(serialize_with = "money")]
    pub award: Decimal,
    /// The most awards of this measure per year in this version, if the policy caps them.
    pub annual_quota: Option<u32>,
    /// The reasoning, step by step.
    pub trace: Vec<TraceStep>,
}

fn money<S: Serializer>(amount: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("{amount:.2}"))
}

/// A value as the trace shows it: amounts with a 万元/亿元 reading where round, so they can be
/// matched against the policy's wording at a glance.
pub(crate) trait Shown: Display + PartialOrd + Copy {
    /// The value as the trace prints it.
    fn shown(&self) -> String;
    /// The bare number.
    fn plain(&self) -> String;
}

impl Shown for Decimal {
    fn plain(&self) -> String {
        if self.scale() <= 2 {
            format!("{self:.2}")
        } else {
            self.normalize().to_string()
        }
    }

    fn shown(&self) -> String {
        let yi = Decimal::new(100_000_000, 0);
        let wan = Decimal::new(10_000, 0);
        if !self.is_zero() && (*self % yi).is_zero() {
            format!("{}（{}亿元）", self.plain(), (*self / yi).normalize())
        } else if !self.is_zero() && (*self % wan).is_zero() {
            format!("{}（{}万元）", self.plain(), (*self / wan).normalize())
        } else {
            self.plain()
        }
    }
}

impl Shown for u64 {
    fn plain(&self) -> String {
        self.to_string()
    }

    fn shown(&self) -> String {
        self.to_string()
    }
}

/// A rate as a percentage: `0.30` → `30%`.
pub(crate) fn percent(rate: Decimal) -> String {
    format!("{}%", (rate * Decimal::ONE_HUNDRED).normalize())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "符合 met"
    } else {
        "不符合 not met"
    }
}

/// Collects the steps of one evaluation under one clause.
pub(crate) struct Tracer {
    clause: String,
    steps: Vec<TraceStep>,
}

impl Tracer {
    pub(crate) fn new(clause: &str) -> Tracer {
        Tracer {
            clause: clause.to_owned(),
            steps: Vec::new(),
        }
    }

    /// Adds a free-form step.
    pub(crate) fn step(&mut self, step: impl Into<String>, value: impl Into<String>) {
        self.steps.push(TraceStep {
            clause: self.clause.clone(),
            step: step.into(),
            value: value.into(),
        });
    }

    /// Tests `x` against a threshold from the data file and records the test.
    pub(crate) fn threshold<T: Shown>(
        &mut self,
        label: &str,
        fact: &str,
        x: T,
        threshold: &Threshold<T>,
    ) -> bool {
        let met = threshold.test(x);
        let word = threshold.word;
        let inclusion = if word.includes_number() {
            "含本数 inclusive"
        } else {
            "不含本数 exclusive"
        };
        self.step(
            format!(
                "门槛 threshold：{label} {fact} {word} {}，即 {} {}，{inclusion}",
                threshold.value.shown(),
                word.comparison().symbol(),
                threshold.value.plain(),
            ),
            format!(
                "{} {} {}？{} → {}",
                x.plain(),
                word.comparison().symbol(),
                threshold.value.plain(),
                if met { "是 yes" } else { "否 no" },
                verdict(met)
            ),
        );
        met
    }

    /// Records a yes/no condition that must hold (a certification, a selection).
    pub(crate) fn flag(&mut self, label: &str, fact: &str, x: bool) -> bool {
        self.step(
            format!("条件 condition：{label} {fact}（须为 true）"),
            format!("{x} → {}", verdict(x)),
        );
        x
    }

    /// Records a condition shown by its own description.
    pub(crate) fn condition(&mut self, label: String, shown: String, met: bool) -> bool {
        self.step(
            format!("条件 condition：{label}"),
            format!("{shown} → {}", verdict(met)),
        );
        met
    }

    /// `floor_fen(rate × base)`, recorded with its numbers.
    pub(crate) fn share(
        &mut self,
        label: &str,
        rate: Decimal,
        fact: &str,
        base: Decimal,
    ) -> Decimal {
        let exact = rate * base;
        let floored = floor_fen(exact);
        self.step(
            format!(
                "计算 compute：{label}，{} × {fact}（取整到分 floored to the fen）",
                percent(rate)
            ),
            format!("{} × {base:.2} = {exact} → {floored:.2}", percent(rate)),
        );
        floored
    }

    /// Caps `amount` at `cap`, recording whether the cap bound.
    pub(crate) fn cap(&mut self, label: &str, amount: Decimal, cap: Decimal) -> Decimal {
        let binds = amount > cap;
        let outcome = if binds {
            format!("计算值 {amount:.2} → 触及上限 cap binds：{cap:.2}")
        } else {
            format!("计算值 {amount:.2} → 未触及 not binding")
        };
        self.step(format!("上限 cap：{label} {}", cap.shown()), outcome);
        amount.min(cap)
    }

    /// The ⌈50%⌉ funding ceiling: "在各级财政资助总金额不超过其投资总额50%的前提下". The award may
    /// be at most `max(0, floor_fen(share × total_investment) − government_funding_received)`.
    pub(crate) fn funding_ceiling(
        &mut self,
        share: Decimal,
        total_investment: Decimal,
        government_funding_received: Decimal,
        amount: Decimal,
    ) -> Decimal {
        let limit = floor_fen(share * total_investment);
        let room = (limit - government_funding_received).max(Decimal::ZERO);
        let binds = amount > room;
        let outcome = if binds {
            format!("计算值 {amount:.2} → 触及 ceiling binds：{room:.2}")
        } else {
            format!("计算值 {amount:.2} → 未触及 not binding")
        };
        self.step(
            format!(
                "⌈{p}⌉ 各级财政资助总金额不超过其投资总额{p}：\
                 max(0, {p} × total_investment − government_funding_received)",
                p = percent(share)
            ),
            format!(
                "{} × {total_investment:.2} = {limit:.2}，− {government_funding_received:.2} = \
                 {room:.2}；{outcome}",
                percent(share)
            ),
        );
        amount.min(room)
    }

    /// The steps so far.
    pub(crate) fn finish(self) -> Vec<TraceStep> {
        self.steps
    }
}
