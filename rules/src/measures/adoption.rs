//! 四、服务商资源池 and 五(1) 上云上平台 (the cloud voucher).

use rust_decimal::Decimal;
use serde::Deserialize;

use super::{Outcome, Params};
use crate::boundary::Threshold;
use crate::error::EvalError;
use crate::facts::Facts;
use crate::params::{amount, rate};
use crate::trace::Tracer;

/// 四(1) 资源池: "给予每家20万元奖励…对年营业收入超过2000万元的，追加30万元奖励".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResourcePool {
    /// Each selected provider.
    #[serde(deserialize_with = "amount")]
    award: Decimal,
    /// The additional award for larger providers.
    bonus: RevenueBonus,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevenueBonus {
    annual_revenue: Threshold<Decimal>,
    #[serde(deserialize_with = "amount")]
    award: Decimal,
}

impl Params for ResourcePool {}

pub(crate) fn resource_pool(
    p: &ResourcePool,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let selected = f.flag("selected")?;
    let revenue = f.amount("annual_revenue")?;
    if !t.flag("入选资源池", "selected", selected) {
        return Ok(Outcome::not_eligible());
    }
    t.step("奖励 award：每家 each", format!("{:.2}", p.award));
    let mut award = p.award;
    if t.threshold(
        "追加奖励 bonus：年营业收入",
        "annual_revenue",
        revenue,
        &p.bonus.annual_revenue,
    ) {
        award += p.bonus.award;
        t.step(
            "追加 bonus",
            format!("{:.2} + {:.2} = {award:.2}", p.award, p.bonus.award),
        );
    }
    Ok(Outcome::eligible(award))
}

/// 五(1) 上云上平台: "按照平台或工业软件当年度收取费用的30%给予最高5万元的消费券补贴". The voucher
/// program's defaults (SPEC §1) are read from here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CloudVoucher {
    /// "收取费用的30%".
    #[serde(deserialize_with = "rate")]
    pub(crate) rate: Decimal,
    /// "最高5万元", per firm per year over all its vouchers.
    #[serde(deserialize_with = "amount")]
    pub(crate) cap_per_firm: Decimal,
}

impl Params for CloudVoucher {}

pub(crate) fn cloud_voucher(
    p: &CloudVoucher,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let fee = f.amount("annual_fee")?;
    let granted = f.amount("granted_this_year")?;
    if fee.is_zero() {
        return Err(EvalError::invalid(
            "annual_fee",
            "must be greater than zero (API.md, Conventions)",
        ));
    }
    let share = t.share("平台或工业软件当年度收取费用", p.rate, "annual_fee", fee);
    let remaining = (p.cap_per_firm - granted).max(Decimal::ZERO);
    t.step(
        "企业年度余额 firm's remaining cap：cap_per_firm − granted_this_year",
        format!(
            "{:.2} − {granted:.2} = {remaining:.2}（不为负 never negative）",
            p.cap_per_firm
        ),
    );
    Ok(Outcome::eligible(t.cap(
        "企业本年剩余额度 firm's remaining cap",
        share,
        remaining,
    )))
}
