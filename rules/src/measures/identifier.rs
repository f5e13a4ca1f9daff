//! 二、标识解析二级节点 (node operators, node construction matching) and 五(2) 标识解析应用.

use rust_decimal::Decimal;
use serde::Deserialize;

use super::{Outcome, Params};
use crate::boundary::Threshold;
use crate::error::EvalError;
use crate::facts::Facts;
use crate::params::{amount, rate};
use crate::trace::Tracer;

/// A fixed award for registrations 超 N and monthly resolutions 超 M: 二(3) for node operators
/// ("年度新增注册量超2000万条且月均解析量超100万次"), 五(2) for adopting firms ("标识注册量超100万条且
/// 月均解析量超10万次").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Registrations {
    /// Identifier registrations (条).
    registrations: Threshold<u64>,
    /// Average resolutions per month (次).
    monthly_resolutions: Threshold<u64>,
    /// The award.
    #[serde(deserialize_with = "amount")]
    award: Decimal,
}

impl Params for Registrations {}

/// Both measures have the same shape; only the registrations fact differs in name.
pub(crate) fn registrations_award(
    p: &Registrations,
    f: &Facts<'_>,
    t: &mut Tracer,
    label: &str,
    registrations_fact: &str,
) -> Result<Outcome, EvalError> {
    let registrations = f.count(registrations_fact)?;
    let resolutions = f.count("monthly_avg_resolutions")?;
    let enough_registrations =
        t.threshold(label, registrations_fact, registrations, &p.registrations);
    let enough_resolutions = t.threshold(
        "月均解析量",
        "monthly_avg_resolutions",
        resolutions,
        &p.monthly_resolutions,
    );
    if !(enough_registrations && enough_resolutions) {
        return Ok(Outcome::not_eligible());
    }
    t.step("奖励 award：定额 fixed amount", format!("{:.2}", p.award));
    Ok(Outcome::eligible(p.award))
}

/// 二(3) 二级节点建设项目配套: "按1:1配套给予最高1000万元奖励" ⌈50%⌉.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeMatching {
    /// "获得国家、省、市资金支持": superior funding must be present (超过 0).
    superior_funding: Threshold<Decimal>,
    /// "1:1配套": matched yuan per yuan of superior funding.
    #[serde(deserialize_with = "rate")]
    matching_rate: Decimal,
    /// "最高1000万元".
    #[serde(deserialize_with = "amount")]
    cap: Decimal,
    /// ⌈50%⌉ "各级财政资助总金额不超过其投资总额50%".
    #[serde(deserialize_with = "rate")]
    funding_ceiling: Decimal,
}

impl Params for NodeMatching {}

pub(crate) fn node_matching(
    p: &NodeMatching,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let superior = f.amount("superior_funding")?;
    let total_investment = f.amount("total_investment")?;
    let received = f.amount("government_funding_received")?;
    if !t.threshold(
        "获得国家、省、市资金支持",
        "superior_funding",
        superior,
        &p.superior_funding,
    ) {
        return Ok(Outcome::not_eligible());
    }
    let matched = t.share("按1:1配套", p.matching_rate, "superior_funding", superior);
    let capped = t.cap("最高", matched, p.cap);
    let award = t.funding_ceiling(p.funding_ceiling, total_investment, received, capped);
    Ok(Outcome::eligible(award))
}
