//! 八、产融对接 (guide fund and other equity investment, financing facilitation), 九、实训基地,
//! 十、行业协会.

use rust_decimal::Decimal;
use serde::Deserialize;

use super::{Outcome, Params};
use crate::boundary::Threshold;
use crate::error::EvalError;
use crate::facts::Facts;
use crate::params::{amount, rate};
use crate::trace::Tracer;

/// 八(1): "按其获得引导基金及其子基金投资部分的5%给予奖励，最高奖励1000万元".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GuideFundEquity {
    /// "获得区引导基金及其子基金股权投资": some investment (超过 0).
    investment: Threshold<Decimal>,
    #[serde(deserialize_with = "rate")]
    rate: Decimal,
    #[serde(deserialize_with = "amount")]
    cap: Decimal,
}

impl Params for GuideFundEquity {}

pub(crate) fn guide_fund_equity(
    p: &GuideFundEquity,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let investment = f.amount("guide_fund_investment")?;
    if !t.threshold(
        "获得引导基金及其子基金投资",
        "guide_fund_investment",
        investment,
        &p.investment,
    ) {
        return Ok(Outcome::not_eligible());
    }
    let share = t.share(
        "按获得引导基金及其子基金投资部分",
        p.rate,
        "guide_fund_investment",
        investment,
    );
    Ok(Outcome::eligible(t.cap("最高奖励", share, p.cap)))
}

/// A fixed award once one amount meets its threshold: 八(1) "获得其它股权投资1000万元及以上",
/// 八(2) "促成制造业企业融资超过10亿元".
fn amount_threshold_award(
    threshold: &Threshold<Decimal>,
    award: Decimal,
    f: &Facts<'_>,
    t: &mut Tracer,
    label: &str,
    fact: &str,
) -> Result<Outcome, EvalError> {
    let value = f.amount(fact)?;
    if !t.threshold(label, fact, value, threshold) {
        return Ok(Outcome::not_eligible());
    }
    t.step("奖励 award：定额 fixed amount", format!("{award:.2}"));
    Ok(Outcome::eligible(award))
}

/// 八(1) 其它股权投资.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EquityInvestment {
    investment: Threshold<Decimal>,
    #[serde(deserialize_with = "amount")]
    award: Decimal,
}

impl Params for EquityInvestment {}

pub(crate) fn equity_investment(
    p: &EquityInvestment,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    amount_threshold_award(
        &p.investment,
        p.award,
        f,
        t,
        "获得其它股权投资",
        "equity_investment",
    )
}

/// 八(2) 促成融资.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinancingFacilitation {
    financing: Threshold<Decimal>,
    #[serde(deserialize_with = "amount")]
    award: Decimal,
}

impl Params for FinancingFacilitation {}

pub(crate) fn financing_facilitation(
    p: &FinancingFacilitation,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    amount_threshold_award(
        &p.financing,
        p.award,
        f,
        t,
        "促成制造业企业融资",
        "facilitated_financing",
    )
}

/// 九(1) 实训基地: "给予每家最高50万元资助"; the amount within the cap is the one approved.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrainingBase {
    #[serde(deserialize_with = "amount")]
    cap: Decimal,
}

impl Params for TrainingBase {}

pub(crate) fn training_base(
    p: &TrainingBase,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let recognized = f.flag("recognized")?;
    let approved = f.amount("approved_amount")?;
    if !t.flag(
        "认定为面向工业互联网应用企业的实训基地",
        "recognized",
        recognized,
    ) {
        return Ok(Outcome::not_eligible());
    }
    t.step("核定金额 approved_amount", format!("{approved:.2}"));
    Ok(Outcome::eligible(t.cap("每家最高", approved, p.cap)))
}

/// 十(1) 行业协会: "经区业务主管部门考核达标，给予协会100万元(一次性)支持".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Association {
    #[serde(deserialize_with = "amount")]
    award: Decimal,
    /// "一次性": only the revised text says so; an association awarded before gets nothing.
    one_time: bool,
}

impl Params for Association {}

pub(crate) fn association(
    p: &Association,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let passed = f.flag("passed_assessment")?;
    let previously = f.flag("previously_awarded")?;
    let passed = t.flag("经区业务主管部门考核达标", "passed_assessment", passed);
    let first_time = if p.one_time {
        t.condition(
            "一次性支持 one-time：此前未获本项支持 previously_awarded 须为 false".to_owned(),
            previously.to_string(),
            !previously,
        )
    } else {
        t.step(
            "一次性 one-time",
            format!("本版本无一次性限制 no one-time rule in this version（previously_awarded {previously} 不影响 ignored）"),
        );
        true
    };
    if !(passed && first_time) {
        return Ok(Outcome::not_eligible());
    }
    t.step("奖励 award：定额 fixed amount", format!("{:.2}", p.award));
    Ok(Outcome::eligible(p.award))
}
