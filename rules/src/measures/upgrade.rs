//! 六(1) 自动化、智能化改造 and 七(3) 产业集群数字化转型试点. (The benchmark and park measures of
//! 六 and 七 are fixed awards on a selection, see `flagged_award`.)

use rust_decimal::Decimal;
use serde::Deserialize;

use super::{Outcome, Params};
use crate::boundary::Threshold;
use crate::error::EvalError;
use crate::facts::Facts;
use crate::params::amount;
use crate::trace::{percent, Tracer};

/// 六(1): "一年内设备投资额500万元以上的，按照设备购置价格的10～30%给予补贴，最高补贴1500万元；
/// 其中，对于购置宝安企业生产的设备，且该部分设备投资额占设备总投资额30%以上的，再给予20万元的奖励".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EquipmentUpgrade {
    /// "一年内设备投资额500万元以上".
    investment: Threshold<Decimal>,
    /// Lower end of "10～30%": the rate set by review must be at least this.
    rate_min: Threshold<Decimal>,
    /// Upper end of "10～30%".
    rate_max: Threshold<Decimal>,
    /// "最高补贴1500万元" (the subsidy only; the local-equipment award comes on top).
    #[serde(deserialize_with = "amount")]
    cap: Decimal,
    /// "占设备总投资额30%以上": a share of equipment_investment.
    local_share: Threshold<Decimal>,
    /// "再给予20万元的奖励".
    #[serde(deserialize_with = "amount")]
    local_award: Decimal,
}

impl Params for EquipmentUpgrade {
    fn check(&self) -> Result<(), String> {
        if self.rate_min.value > self.rate_max.value || self.rate_max.value > Decimal::ONE {
            return Err("rate_min must not exceed rate_max, nor rate_max 1".to_owned());
        }
        Ok(())
    }
}

pub(crate) fn equipment_upgrade(
    p: &EquipmentUpgrade,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let investment = f.amount("equipment_investment")?;
    let rate = f.rate("subsidy_rate")?;
    let local = f.amount("local_equipment_investment")?;
    if !(p.rate_min.test(rate) && p.rate_max.test(rate)) {
        return Err(EvalError::invalid(
            "subsidy_rate",
            format!(
                "{rate} is outside the range {}～{} set by 六(1) (\"按照设备购置价格的10～30%给予补贴\")",
                p.rate_min.value, p.rate_max.value
            ),
        ));
    }
    // Input consistency, not a policy threshold: the local part can't exceed the whole.
    if local > investment {
        return Err(EvalError::invalid(
            "local_equipment_investment",
            "is larger than equipment_investment, of which it is a part",
        ));
    }
    t.step(
        "补贴比例 subsidy_rate（评审确定 set by review）",
        format!(
            "{}，在 {}～{} 之内 within range",
            percent(rate),
            percent(p.rate_min.value),
            percent(p.rate_max.value)
        ),
    );
    if !t.threshold(
        "一年内设备投资额",
        "equipment_investment",
        investment,
        &p.investment,
    ) {
        return Ok(Outcome::not_eligible());
    }
    let subsidy = t.share("按照设备购置价格", rate, "equipment_investment", investment);
    let subsidy = t.cap("最高补贴", subsidy, p.cap);
    let local_threshold = p.local_share.scaled(investment);
    t.step(
        "宝安企业生产设备占比 local share",
        format!(
            "{} × equipment_investment {investment:.2} = {}",
            percent(p.local_share.value),
            local_threshold.value
        ),
    );
    let mut award = subsidy;
    if t.threshold(
        "购置宝安企业生产的设备投资额",
        "local_equipment_investment",
        local,
        &local_threshold,
    ) {
        award += p.local_award;
        t.step(
            "再给予 additional award",
            format!("{subsidy:.2} + {:.2} = {award:.2}", p.local_award),
        );
    }
    Ok(Outcome::eligible(award))
}

/// The acceptance a cluster pilot reached (七(3) "通过国家或省级…试点项目验收").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AcceptedLevel {
    National,
    Provincial,
    None,
}

/// 七(3) 产业集群数字化转型试点: "区内企业作为牵头单位通过国家或省级产业集群数字化转型试点项目验收的，
/// 给予每家100万元奖励".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterPilot {
    /// The acceptance levels that qualify.
    qualifying_levels: Vec<AcceptedLevel>,
    #[serde(deserialize_with = "amount")]
    award: Decimal,
}

impl AcceptedLevel {
    fn as_str(self) -> &'static str {
        match self {
            AcceptedLevel::National => "national",
            AcceptedLevel::Provincial => "provincial",
            AcceptedLevel::None => "none",
        }
    }
}

impl Params for ClusterPilot {}

pub(crate) fn cluster_pilot(
    p: &ClusterPilot,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let lead = f.flag("lead_unit")?;
    let level = f.choice(
        "accepted_level",
        &[
            ("national", AcceptedLevel::National),
            ("provincial", AcceptedLevel::Provincial),
            ("none", AcceptedLevel::None),
        ],
    )?;
    let met = [
        t.flag("作为牵头单位", "lead_unit", lead),
        t.condition(
            format!(
                "通过国家或省级试点项目验收 accepted_level ∈ {{{}}}",
                p.qualifying_levels
                    .iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            level.as_str().to_owned(),
            p.qualifying_levels.contains(&level),
        ),
    ];
    if met.contains(&false) {
        return Ok(Outcome::not_eligible());
    }
    t.step("奖励 award：每家 each", format!("{:.2}", p.award));
    Ok(Outcome::eligible(p.award))
}
