//! 三、大力培育工业互联网平台: industry and professional platforms, cross-industry (双跨)
//! platforms, application promotion centres.

use rust_decimal::Decimal;
use serde::Deserialize;

use super::{Outcome, Params};
use crate::boundary::Threshold;
use crate::error::EvalError;
use crate::facts::Facts;
use crate::params::{amount, rate};
use crate::trace::{Shown, Tracer};

/// 三(1) 行业性平台: three thresholds met together, then a tiered award "最高500万元".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IndustryPlatform {
    /// "年交易额10亿元以上".
    transaction_volume: Threshold<Decimal>,
    /// "客户数量3000家以上".
    customers: Threshold<u64>,
    /// "平台服务营业收入2000万元以上".
    service_revenue: Threshold<Decimal>,
    /// "分级分层给予最高500万元".
    #[serde(deserialize_with = "amount")]
    cap: Decimal,
    /// The tiers, which the policy leaves to implementing rules (实施细则另行制定).
    tiers: TierTable,
}

/// A tier table: the first tier whose revenue threshold is met gives its award.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierTable {
    /// True while the implementing rules are not published: the trace says so.
    provisional: bool,
    /// Where the tiers come from.
    source: String,
    /// Highest tier first.
    levels: Vec<Tier>,
    /// The award when no tier's threshold is met.
    #[serde(deserialize_with = "amount")]
    otherwise: Decimal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tier {
    /// Platform service revenue for this tier.
    service_revenue: Threshold<Decimal>,
    #[serde(deserialize_with = "amount")]
    award: Decimal,
}

impl Params for IndustryPlatform {
    fn check(&self) -> Result<(), String> {
        let awards = self.tiers.levels.iter().map(|t| t.award);
        if awards.chain([self.tiers.otherwise]).any(|a| a > self.cap) {
            return Err("a tier's award is above the cap".to_owned());
        }
        let values: Vec<Decimal> = self
            .tiers
            .levels
            .iter()
            .map(|t| t.service_revenue.value)
            .collect();
        if values.windows(2).any(|w| w[0] <= w[1]) {
            return Err("tiers must be listed highest first".to_owned());
        }
        Ok(())
    }
}

pub(crate) fn industry_platform(
    p: &IndustryPlatform,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let volume = f.amount("annual_transaction_volume")?;
    let customers = f.count("customers")?;
    let revenue = f.amount("platform_service_revenue")?;
    let met = [
        t.threshold(
            "年交易额",
            "annual_transaction_volume",
            volume,
            &p.transaction_volume,
        ),
        t.threshold("客户数量（家）", "customers", customers, &p.customers),
        t.threshold(
            "平台服务营业收入",
            "platform_service_revenue",
            revenue,
            &p.service_revenue,
        ),
    ];
    if met.contains(&false) {
        t.step("同时达到 all three required", "未同时达到 not all met");
        return Ok(Outcome::not_eligible());
    }
    let table = &p.tiers;
    let status = if table.provisional {
        "暂定 PROVISIONAL，待实施细则 pending the implementing rules"
    } else {
        "正式 final"
    };
    let mut rows: Vec<String> = Vec::new();
    let mut chosen = None;
    for tier in &table.levels {
        let hit = chosen.is_none() && tier.service_revenue.test(revenue);
        rows.push(format!(
            "{} {} → {:.2}{}",
            tier.service_revenue.word,
            tier.service_revenue.value.shown(),
            tier.award,
            if hit { " ✓" } else { "" }
        ));
        if hit {
            chosen = Some(tier.award);
        }
    }
    let award = chosen.unwrap_or(table.otherwise);
    rows.push(format!(
        "其他 otherwise → {:.2}{}",
        table.otherwise,
        if chosen.is_none() { " ✓" } else { "" }
    ));
    t.step(
        format!("分级分层 tier table（{status}；{}）", table.source),
        format!(
            "platform_service_revenue {:.2}：{}",
            revenue,
            rows.join("；")
        ),
    );
    Ok(Outcome::eligible(t.cap("最高", award, p.cap)))
}

/// 三(2) 专业型平台: "客户数量达到100家且营业收入达到1000万元".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfessionalPlatform {
    customers: Threshold<u64>,
    revenue: Threshold<Decimal>,
    #[serde(deserialize_with = "amount")]
    award: Decimal,
}

impl Params for ProfessionalPlatform {}

pub(crate) fn professional_platform(
    p: &ProfessionalPlatform,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let customers = f.count("customers")?;
    let revenue = f.amount("revenue")?;
    let met = [
        t.threshold("客户数量（家）", "customers", customers, &p.customers),
        t.threshold("营业收入", "revenue", revenue, &p.revenue),
    ];
    if met.contains(&false) {
        return Ok(Outcome::not_eligible());
    }
    t.step("奖励 award：定额 fixed amount", format!("{:.2}", p.award));
    Ok(Outcome::eligible(p.award))
}

/// 三(3) 引进"双跨平台"企业: "落户我区年营业收入2000万元以上且在我区从事双跨平台业务".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Relocation {
    annual_revenue: Threshold<Decimal>,
    #[serde(deserialize_with = "amount")]
    award: Decimal,
}

impl Params for Relocation {}

pub(crate) fn cross_industry_relocation(
    p: &Relocation,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let relocated = f.flag("relocated_to_baoan")?;
    let operates = f.flag("operates_cross_industry_in_baoan")?;
    let revenue = f.amount("annual_revenue")?;
    let met = [
        t.flag("落户我区", "relocated_to_baoan", relocated),
        t.flag(
            "在我区从事双跨平台业务",
            "operates_cross_industry_in_baoan",
            operates,
        ),
        t.threshold("年营业收入", "annual_revenue", revenue, &p.annual_revenue),
    ];
    if met.contains(&false) {
        return Ok(Outcome::not_eligible());
    }
    t.step("奖励 award：定额 fixed amount", format!("{:.2}", p.award));
    Ok(Outcome::eligible(p.award))
}

/// 三(4) 应用创新推广中心: "给予投资额50%、最高1500万元的资助" ⌈50%⌉.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromotionCenter {
    #[serde(deserialize_with = "rate")]
    rate: Decimal,
    #[serde(deserialize_with = "amount")]
    cap: Decimal,
    #[serde(deserialize_with = "rate")]
    funding_ceiling: Decimal,
}

impl Params for PromotionCenter {}

pub(crate) fn promotion_center(
    p: &PromotionCenter,
    f: &Facts<'_>,
    t: &mut Tracer,
) -> Result<Outcome, EvalError> {
    let line = f.flag("has_simulated_line")?;
    let validation = f.flag("has_validation_capability")?;
    let showcase = f.flag("has_showcase")?;
    let total_investment = f.amount("total_investment")?;
    let received = f.amount("government_funding_received")?;
    let key_lab = f.flag("national_key_lab")?;
    let met = [
        t.flag("建成模拟产线", "has_simulated_line", line),
        t.flag(
            "具备工业智能、数字孪生、工业增强现实等应用试验验证功能",
            "has_validation_capability",
            validation,
        ),
        t.flag("提供实物展示及沉浸式体验展示场景", "has_showcase", showcase),
    ];
    t.step(
        "优先支持 priority：获得国家部委重点实验室资质 national_key_lab",
        if key_lab {
            "true → 遴选时优先 ranks first in selection（不影响金额 award unchanged）"
        } else {
            "false → 无优先 no priority（不影响金额 award unchanged）"
        },
    );
    if met.contains(&false) {
        return Ok(Outcome::not_eligible());
    }
    let share = t.share("按投资额计", p.rate, "total_investment", total_investment);
    let capped = t.cap("最高", share, p.cap);
    let award = t.funding_ceiling(p.funding_ceiling, total_investment, received, capped);
    Ok(Outcome::eligible(award))
}
