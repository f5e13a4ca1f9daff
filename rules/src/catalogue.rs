//! The policy versions, chosen by date, and the entry points callers use.
//!
//! The data files are compiled into the binary (`include_str!`) and parsed when the service
//! starts ([`Catalogue::load`]); a file that doesn't parse stops the start rather than running on
//! partial parameters.

use ring::digest::{digest, SHA256};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use time::Date;

use crate::error::{EvalError, LoadError};
use crate::measures::MEASURE_IDS;
use crate::params::VersionFile;
use crate::trace::Evaluation;

/// The shipped data files, with the path each is reported under.
const SHIPPED: [(&str, &str); 2] = [
    (
        "rules/policy/2021.toml",
        include_str!("../policy/2021.toml"),
    ),
    (
        "rules/policy/revised.toml",
        include_str!("../policy/revised.toml"),
    ),
];

/// Every policy version the service knows, each with its measures and parameters.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// Sorted by `valid_from`, non-overlapping.
    versions: Vec<PolicyVersion>,
}

/// One version of the policy (`2021`, `revised`): its validity and the parameters in force
/// during it, identified by the hash of the file they came from.
#[derive(Debug, Clone)]
pub struct PolicyVersion {
    file: VersionFile,
    hash: String,
}

/// A measure as listed for a date (`GET /api/rules/measures`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeasureInfo {
    /// The measure id used in evaluations.
    pub id: String,
    /// Chinese title.
    pub title: String,
    /// Clause id in the policy, e.g. `三(1)`.
    pub clause: String,
    /// Most awards per year in the version in force, if capped.
    pub annual_quota: Option<u32>,
}

/// The cloud voucher program's defaults for a year (SPEC §1), taken from the `cloud_voucher`
/// measure so the issuer and the rules can never disagree on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloudVoucherParams {
    /// Share of the platform's annual fee the voucher pays (五(1): "收取费用的30%").
    pub rate: Decimal,
    /// Most one firm can be granted in a year ("最高5万元").
    pub cap_per_firm: Decimal,
    /// Most firms admitted in a year ("每年支持不超过2000家"); `None` in `2021`, whose
    /// "力争新增2000家" is a target, not a cap.
    pub firm_quota: Option<u32>,
}

impl Catalogue {
    /// Parses the data files shipped in the crate. Call once at start and keep the result; an
    /// error means the shipped parameters are broken and the service must not run.
    pub fn load() -> Result<Catalogue, LoadError> {
        Catalogue::from_named(&SHIPPED)
    }

    /// Parses the given data file texts instead of the shipped ones: for tests that feed a broken
    /// file, and for trying a revised parameter file before shipping it. Errors name the source
    /// by its position (`source 1`, ...).
    pub fn from_sources(sources: &[&str]) -> Result<Catalogue, LoadError> {
        let names: Vec<String> = (1..=sources.len()).map(|i| format!("source {i}")).collect();
        let named: Vec<(&str, &str)> = names
            .iter()
            .map(String::as_str)
            .zip(sources.iter().copied())
            .collect();
        Catalogue::from_named(&named)
    }

    fn from_named(sources: &[(&str, &str)]) -> Result<Catalogue, LoadError> {
        let mut versions = Vec::with_capacity(sources.len());
        for (name, text) in sources {
            let invalid = |message: String| LoadError::Invalid {
                file: (*name).to_owned(),
                message,
            };
            let file: VersionFile = toml::from_str(text).map_err(|e| LoadError::Parse {
                file: (*name).to_owned(),
                message: e.to_string(),
            })?;
            if file
                .valid_until
                .is_some_and(|until| until < file.valid_from)
            {
                return Err(invalid("valid_until is before valid_from".to_owned()));
            }
            file.measures.check().map_err(invalid)?;
            let hash = hex(digest(&SHA256, text.as_bytes()).as_ref());
            versions.push((name, PolicyVersion { file, hash }));
        }
        versions.sort_by_key(|(_, v)| v.file.valid_from);
        for (i, (name, later)) in versions.iter().enumerate() {
            let invalid = |message: String| LoadError::Invalid {
                file: (**name).to_owned(),
                message,
            };
            if versions[..i].iter().any(|(_, v)| v.id() == later.id()) {
                return Err(invalid(format!(
                    "version id {:?} is used twice",
                    later.id()
                )));
            }
            let Some((_, earlier)) = i.checked_sub(1).map(|j| &versions[j]) else {
                continue;
            };
            if earlier
                .valid_until()
                .is_none_or(|until| until >= later.valid_from())
            {
                return Err(invalid(format!(
                    "version {:?} overlaps version {:?}",
                    later.id(),
                    earlier.id()
                )));
            }
        }
        if versions.is_empty() {
            return Err(LoadError::Invalid {
                file: "(none)".to_owned(),
                message: "no policy version given".to_owned(),
            });
        }
        Ok(Catalogue {
            versions: versions.into_iter().map(|(_, v)| v).collect(),
        })
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> &[PolicyVersion] {
        &self.versions
    }

    /// The version in force on `date` (both ends inclusive); `None` before the policy began.
    pub fn version_on(&self, date: Date) -> Option<&PolicyVersion> {
        self.versions.iter().find(|v| v.in_force_on(date))
    }

    /// The measures in force on `date`, in catalogue order; empty when no version is.
    pub fn measures_on(&self, date: Date) -> Vec<MeasureInfo> {
        self.version_on(date)
            .map(|v| v.file.measures.infos())
            .unwrap_or_default()
    }

    /// Evaluates `measure` for an applicant's `facts` under the version in force on `date`.
    pub fn evaluate(
        &self,
        measure: &str,
        date: Date,
        facts: &Value,
    ) -> Result<Evaluation, EvalError> {
        if !MEASURE_IDS.contains(&measure) {
            return Err(EvalError::UnknownMeasure(measure.to_owned()));
        }
        let not_in_force = || EvalError::NotInForce {
            measure: measure.to_owned(),
            date,
        };
        let version = self.version_on(date).ok_or_else(not_in_force)?;
        version
            .file
            .measures
            .evaluate(measure, version, facts)
            .ok_or_else(not_in_force)?
    }

    /// The voucher program's defaults on `date`; `None` when `cloud_voucher` is not in force.
    pub fn cloud_voucher_params(&self, date: Date) -> Option<CloudVoucherParams> {
        let def = self
            .version_on(date)?
            .file
            .measures
            .cloud_voucher
            .as_ref()?;
        Some(CloudVoucherParams {
            rate: def.params.rate,
            cap_per_firm: def.params.cap_per_firm,
            firm_quota: def.annual_quota,
        })
    }
}

impl PolicyVersion {
    /// The version id (`2021`, `revised`) recorded with every evaluation.
    pub fn id(&self) -> &str {
        &self.file.id
    }

    /// The document the parameters come from, for citing in traces and exports.
    pub fn document(&self) -> &str {
        &self.file.document
    }

    /// The policy's title.
    pub fn title(&self) -> &str {
        &self.file.title
    }

    /// First day in force.
    pub fn valid_from(&self) -> Date {
        self.file.valid_from
    }

    /// Last day in force (inclusive), `None` when open-ended.
    pub fn valid_until(&self) -> Option<Date> {
        self.file.valid_until
    }

    /// SHA-256 (lowercase hex) of the data file's text: which parameters produced an award.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The measures of this version.
    pub fn measures(&self) -> Vec<MeasureInfo> {
        self.file.measures.infos()
    }

    /// Whether `date` falls within this version's validity, both ends inclusive.
    pub fn in_force_on(&self, date: Date) -> bool {
        date >= self.valid_from() && self.valid_until().is_none_or(|until| date <= until)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
