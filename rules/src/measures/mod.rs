//! The catalogue of measures (MEASURES.md, "Catalogue"): one table naming each measure's id, its
//! parameter type, its evaluator and its facts, so the data files, the fact checks and the
//! dispatch can't drift apart.
//!
//! Each evaluator reads and checks all its facts first (so a bad fact is reported whether or not
//! the applicant qualifies), then tests every condition (all of them, so the trace shows each),
//! then computes the award. Thresholds come from the data file and are tested through
//! [`crate::Threshold::test`]; caps and ceilings go through [`Tracer`] so each is shown.

mod adoption;
mod finance;
mod identifier;
mod innovation;
mod platform;
mod upgrade;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use crate::catalogue::{MeasureInfo, PolicyVersion};
use crate::error::EvalError;
use crate::facts::Facts;
use crate::params::{FixedAward, MeasureDef};
use crate::trace::{Evaluation, Tracer};

/// What an evaluator decides; the award is forced to 0.00 when not eligible.
pub(crate) struct Outcome {
    eligible: bool,
    award: Decimal,
}

impl Outcome {
    fn eligible(award: Decimal) -> Outcome {
        Outcome {
            eligible: true,
            award,
        }
    }

    fn not_eligible() -> Outcome {
        Outcome {
            eligible: false,
            award: Decimal::ZERO,
        }
    }
}

/// Consistency checks a parameter block runs after it parses (a tier above its cap, a range
/// upside down). Most blocks have none.
pub(crate) trait Params {
    /// Describes the first inconsistency found.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

impl Params for FixedAward {}

type Evaluator<P> = fn(&P, &Facts<'_>, &mut Tracer) -> Result<Outcome, EvalError>;

macro_rules! catalogue {
    ($($id:ident: $params:ty = $eval:expr, [$($fact:literal),* $(,)?];)*) => {
        /// The measures of one version. A measure absent from the file is not in force in that
        /// version; an id not listed here is refused when the file loads.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct MeasureSet {
            $(pub(crate) $id: Option<MeasureDef<$params>>,)*
        }

        /// Every measure id of MEASURES.md, in its order.
        pub const MEASURE_IDS: &[&str] = &[$(stringify!($id)),*];

        impl MeasureSet {
            pub(crate) fn infos(&self) -> Vec<MeasureInfo> {
                let mut infos = Vec::new();
                $(if let Some(def) = &self.$id {
                    infos.push(def.info(stringify!($id)));
                })*
                infos
            }

            pub(crate) fn check(&self) -> Result<(), String> {
                $(if let Some(def) = &self.$id {
                    def.check().map_err(|e| format!("measures.{}: {e}", stringify!($id)))?;
                })*
                Ok(())
            }

            /// `None` when this version doesn't have the measure.
            pub(crate) fn evaluate(
                &self,
                id: &str,
                version: &PolicyVersion,
                facts: &Value,
            ) -> Option<Result<Evaluation, EvalError>> {
                match id {
                    $(stringify!($id) => self.$id.as_ref().map(|def| {
                        let eval: Evaluator<$params> = $eval;
                        run(stringify!($id), def, version, &[$($fact),*], eval, facts)
                    }),)*
                    _ => None,
                }
            }
        }
    };
}

catalogue! {
    innovation_center: innovation::InnovationCenter = innovation::innovation_center,
        ["level", "higher_level_funding", "total_investment", "government_funding_received"];
    standard_setting: innovation::StandardSetting = innovation::standard_setting,
        ["international_standards", "national_standards", "industry_standards"];
    key_tech_project: innovation::KeyTechProject = innovation::key_tech_project,
        ["actual_investment"];
    identifier_node_operator: identifier::Registrations = |p, f, t| {
            identifier::registrations_award(p, f, t, "年度新增注册量", "annual_new_registrations")
        },
        ["annual_new_registrations", "monthly_avg_resolutions"];
    identifier_node_matching: identifier::NodeMatching = identifier::node_matching,
        ["superior_funding", "total_investment", "government_funding_received"];
    industry_platform: platform::IndustryPlatform = platform::industry_platform,
        ["annual_transaction_volume", "customers", "platform_service_revenue"];
    professional_platform: platform::ProfessionalPlatform = platform::professional_platform,
        ["customers", "revenue"];
    cross_industry_platform: FixedAward =
        |p, f, t| flagged_award(p, f, t, "获得工信部认定的“双跨平台”", "miit_certified"),
        ["miit_certified"];
    cross_industry_relocation: platform::Relocation = platform::cross_industry_relocation,
        ["relocated_to_baoan", "operates_cross_industry_in_baoan", "annual_revenue"];
    promotion_center: platform::PromotionCenter = platform::promotion_center,
        ["has_simulated_line", "has_validation_capability", "has_showcase", "total_investment",
         "government_funding_received", "national_key_lab"];
    resource_pool: adoption::ResourcePool = adoption::resource_pool,
        ["selected", "annual_revenue"];
    cloud_voucher: adoption::CloudVoucher = adoption::cloud_voucher,
        ["annual_fee", "granted_this_year"];
    identifier_adoption: identifier::Registrations =
        |p, f, t| identifier::registrations_award(p, f, t, "标识注册量", "registrations"),
        ["registrations", "monthly_avg_resolutions"];
    application_benchmark: FixedAward =
        |p, f, t| flagged_award(p, f, t, "入选工业互联网应用标杆企业", "selected"),
        ["selected"];
    equipment_upgrade: upgrade::EquipmentUpgrade = upgrade::equipment_upgrade,
        ["equipment_investment", "subsidy_rate", "local_equipment_investment"];
    smart_manufacturing_benchmark: FixedAward =
        |p, f, t| flagged_award(p, f, t, "获评智能制造标杆企业", "selected"),
        ["selected"];
    park_5g: FixedAward =
        |p, f, t| flagged_award(p, f, t, "入选“5G+工业互联网”应用示范园区", "selected"),
        ["selected"];
    cluster_pilot: upgrade::ClusterPilot = upgrade::cluster_pilot,
        ["lead_unit", "accepted_level"];
    guide_fund_equity: finance::GuideFundEquity = finance::guide_fund_equity,
        ["guide_fund_investment"];
    equity_investment: finance::EquityInvestment = finance::equity_investment,
        ["equity_investment"];
    financing_facilitation: finance::FinancingFacilitation = finance::financing_facilitation,
        ["facilitated_financing"];
    training_base: finance::TrainingBase = finance::training_base,
        ["recognized", "approved_amount"];
    association: finance::Association = finance::association,
        ["passed_assessment", "previously_awarded"];
}

impl<P: Params> MeasureDef<P> {
    fn info(&self, id: &str) -> MeasureInfo {
        MeasureInfo {
            id: id.to_owned(),
            title: self.title.clone(),
            clause: self.clause.clone(),
            annual_quota: self.annual_quota,
        }
    }

    fn check(&self) -> Result<(), String> {
        for (key, value) in [
            ("title", &self.title),
            ("clause", &self.clause),
            ("text", &self.text),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{key} is empty"));
            }
        }
        self.params.check()
    }
}

/// Runs one evaluator inside the steps every evaluation shares: the clause quoted first, the
/// version, the data file's notes; then the quota and the result last.
fn run<P>(
    id: &str,
    def: &MeasureDef<P>,
    version: &PolicyVersion,
    known_facts: &[&str],
    eval: Evaluator<P>,
    facts: &Value,
) -> Result<Evaluation, EvalError> {
    let facts = Facts::new(facts, known_facts)?;
    let mut t = Tracer::new(&def.clause);
    t.step(
        format!("条文 clause {}：{}", def.clause, def.title),
        def.text.clone(),
    );
    let until = version
        .valid_until()
        .map_or_else(|| "长期 open-ended".to_owned(), |d| d.to_string());
    t.step(
        "政策版本 policy version",
        format!(
            "{}（{}，{} 至 {until}；参数文件 sha256 {}）",
            version.id(),
            version.document(),
            version.valid_from(),
            version.hash()
        ),
    );
    for note in &def.notes {
        t.step("说明 note", note.clone());
    }
    let outcome = eval(&def.params, &facts, &mut t)?;
    t.step(
        "年度名额 annual quota",
        def.annual_quota.map_or_else(
            || "不设上限 none".to_owned(),
            |q| format!("每年不超过{q}个 at most {q} per year（由奖励登记簿计数 counted by the award register）"),
        ),
    );
    let award = if outcome.eligible {
        crate::floor_fen(outcome.award.max(Decimal::ZERO))
    } else {
        Decimal::new(0, 2)
    };
    t.step(
        "结论 result",
        if outcome.eligible {
            format!("符合条件 eligible；奖励 award {award:.2}")
        } else {
            format!("不符合条件 not eligible；奖励 award {award:.2}")
        },
    );
    Ok(Evaluation {
        measure: id.to_owned(),
        policy_version: version.id().to_owned(),
        params_hash: version.hash().to_owned(),
        eligible: outcome.eligible,
        award,
        annual_quota: def.annual_quota,
        trace: t.finish(),
    })
}

/// A fixed award for a certification or selection the bureau (or MIIT) has made.
fn flagged_award(
    p: &FixedAward,
    f: &Facts<'_>,
    t: &mut Tracer,
    label: &str,
    fact: &str,
) -> Result<Outcome, EvalError> {
    let flag = f.flag(fact)?;
    if !t.flag(label, fact, flag) {
        return Ok(Outcome::not_eligible());
    }
    t.step("奖励 award：定额 fixed amount", format!("{:.2}", p.award));
    Ok(Outcome::eligible(p.award))
}
