//! 一、推动工业互联网技术创新与成果转化: innovation centres, standards, key technology projects.

use rust_decimal::Decimal;
use serde::Deserialize;

use super::{Outcome, Params};
use crate::boundary::Threshold;
use crate::error::EvalError;
use crate::facts::Facts;
use crate::params::{amount, rate};
use crate::trace::Tracer;

/// 一(1) 制造业创新中心配套奖励.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InnovationCenter {
    /// "按照上级扶持资金的50%".
    #[serde(deserialize_with = "rate")]
    matching_rate: Decimal,
    /// "分别给予最高1亿元、5000万元、3000万元".
    caps: LevelCaps,
    /// ⌈50%⌉ "各级财政资助总金额不超过其投资总额50%".
    #[serde(deserialize_with = "rate")]
    funding_ceiling: Decimal,
}

/// A cap per certification level (国家、省、市).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelCaps {
    #[serde(deserialize_with = "amount")]
    national: Decimal,
    #[serde(deserialize_with = "amount")]
    provincial: Decimal,
    #[serde(deserialize_with = "amount")]
    municipal: Decimal,
}

impl Params for InnovationCenter {}

pub(crate) fn innovation_center(
    p: &InnovationCenter,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let (level, cap) = f.choice(
        "level",
        &[
            ("national", ("国家级 national", p.caps.national)),
            ("provincial", ("省级 provincial", p.caps.provincial)),
            ("municipal", ("市级 municipal", p.caps.municipal)),
        ],
    )?;
    let higher_level_funding = f.amount("higher_level_funding")?;
    let total_investment = f.amount("total_investment")?;
    let received = f.amount("government_funding_received")?;
    t.step("认定级别 certified level", level.to_owned());
    let matched = t.share(
        "按照上级扶持资金的比例配套",
        p.matching_rate,
        "higher_level_funding",
        higher_level_funding,
    );
    let capped = t.cap(&format!("{level}最高"), matched, cap);
    let award = t.funding_ceiling(p.funding_ceiling, total_investment, received, capped);
    Ok(Outcome::eligible(award))
}

/// 一(3) 主导制定标准奖励: a fixed amount per standard, by kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StandardSetting {
    /// The applicant must have led at least this many standards in all.
    minimum: Threshold<u64>,
    /// "每项100万元" per international standard.
    #[serde(deserialize_with = "amount")]
    international: Decimal,
    /// "每项50万元" per national standard.
    #[serde(deserialize_with = "amount")]
    national: Decimal,
    /// "每项15万元" per industry standard.
    #[serde(deserialize_with = "amount")]
    industry: Decimal,
}

impl Params for StandardSetting {}

pub(crate) fn standard_setting(
    p: &StandardSetting,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let kinds = [
        ("国际标准", "international_standards", p.international),
        ("国家标准", "national_standards", p.national),
        ("行业标准", "industry_standards", p.industry),
    ];
    let mut counts = Vec::with_capacity(kinds.len());
    for (_, fact, _) in kinds {
        counts.push(f.count(fact)?);
    }
    let led = counts.iter().fold(0u64, |sum, n| sum.saturating_add(*n));
    let all = "international_standards + national_standards + industry_standards";
    if !t.threshold("主导制定标准总数", all, led, &p.minimum) {
        return Ok(Outcome::not_eligible());
    }
    let mut award = Decimal::ZERO;
    for ((label, fact, each), count) in kinds.into_iter().zip(counts) {
        let subtotal = Decimal::from(count)
            .checked_mul(each)
            .and_then(|s| s.checked_add(award).map(|total| (s, total)));
        let Some((subtotal, total)) = subtotal else {
            return Err(EvalError::invalid(fact, "is too large"));
        };
        t.step(
            format!("计算 compute：{label} {fact}，每项 {each:.2}"),
            format!("{count} × {each:.2} = {subtotal:.2}"),
        );
        award = total;
    }
    t.step("合计 sum", format!("{award:.2}"));
    Ok(Outcome::eligible(award))
}

/// 一(3) 工业互联网关键技术攻关项目 (`2021` only: a 2021 task the revision deleted).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyTechProject {
    /// The project must have actual investment (a derived threshold: 超过 0).
    investment: Threshold<Decimal>,
    /// "给予项目实际投入50%".
    #[serde(deserialize_with = "rate")]
    rate: Decimal,
    /// "最高200万元".
    #[serde(deserialize_with = "amount")]
    cap: Decimal,
}

impl Params for KeyTechProject {}

pub(crate) fn key_tech_project(
    p: &KeyTechProject,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let investment = f.amount("actual_investment")?;
    if !t.threshold(
        "项目实际投入",
        "actual_investment",
        investment,
        &p.investment,
    ) {
        return Ok(Outcome::not_eligible());
    }
    let share = t.share("按项目实际投入计", p.rate, "actual_investment", investment);
    Ok(Outcome::eligible(t.cap("最高", share, p.cap)))
}
