//! The award register: a reviewer records an award under one measure with the evaluation that
//! justified it; Postgres decides the annual quota and the facts the register knows itself.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;
use voucher_core::audit;
use voucher_core::auth::{BureauSession, Role};
use voucher_core::error::is_constraint;
use voucher_core::extract::Query;
use voucher_core::page::Page;
use voucher_core::{ApiError, AppState, ErrorCode, Json, Money, Uscc};

use crate::rules_api::{evaluate_measure, parse_date, TraceStep};

/// The measure whose `previously_awarded` fact the register supplies (十(1), 一次性 in
/// `revised`).
const ASSOCIATION: &str = "association";
/// The fact of [`ASSOCIATION`] that comes from the register, never from the caller.
const PREVIOUSLY_AWARDED: &str = "previously_awarded";
/// The years `award_counts` and `awards` accept (their `*_year_range` constraints).
const YEARS: std::ops::RangeInclusive<i32> = 2021..=2100;

/// An award a reviewer records (`POST /api/rules/awards`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AwardRequest {
    /// The measure id.
    pub measure: String,
    /// `YYYY-MM-DD`: chooses the policy version, and its year is the quota year.
    #[schema(example = "2022-03-11")]
    pub date: String,
    /// The applicant's USCC.
    pub applicant_uscc: Uscc,
    /// The applicant's facts; those the register knows itself (an association's
    /// `previously_awarded`) are taken from the register, whatever is sent.
    #[schema(value_type = Object)]
    pub facts: Value,
}

/// A recorded award with the evaluation that justified it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Award {
    /// Award id.
    pub id: Uuid,
    /// The measure id.
    pub measure: String,
    /// The date the award was evaluated on (`YYYY-MM-DD`).
    pub date: String,
    /// The quota year: the calendar year of `date`.
    pub year: i32,
    /// The applicant's USCC.
    pub applicant_uscc: String,
    /// The amount awarded.
    pub award: Money,
    /// The policy version applied.
    pub policy_version: String,
    /// SHA-256 of the parameter file used.
    pub params_hash: String,
    /// The measure's annual quota in that version; `null` when uncapped.
    pub annual_quota: Option<u32>,
    /// The facts evaluated, after the register supplied its own.
    #[schema(value_type = Object)]
    pub facts: Value,
    /// The facts the register supplied itself (overriding the caller's), by name.
    #[schema(value_type = Object)]
    pub register_facts: Value,
    /// The evaluation's trace, with the register's own steps.
    pub trace: Vec<TraceStep>,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// The reviewer's username.
    pub recorded_by: String,
}

/// Which awards to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AwardsQuery {
    /// The quota year, e.g. `2022`.
    pub year: Option<String>,
    /// Only this measure's awards.
    pub measure: Option<String>,
}

/// Why an award was not recorded (beyond a request the evaluation itself refuses).
#[derive(Debug, thiserror::Error)]
pub enum AwardError {
    /// The evaluation says not eligible.
    #[error("not eligible for {measure} on {date}: {unmet}")]
    NotEligible {
        /// The measure.
        measure: String,
        /// The date evaluated.
        date: Date,
        /// The conditions not met, quoted from the trace.
        unmet: String,
    },
    /// Eligible, but the evaluation gives 0.00 (a used-up cap or ceiling): no award to record.
    #[error("the evaluation gives an award of 0.00 for {0}; there is nothing to record")]
    NothingToAward(String),
    /// 十(1) revised 一次性: the association already has its one award.
    #[error("{0} has already received the one-time association award (十(1) 一次性支持)")]
    AlreadyAwardedOnce(String),
    /// The measure's annual quota is reached.
    #[error("the annual quota of {quota} awards of {measure} in {year} is reached")]
    QuotaExhausted {
        /// The measure.
        measure: String,
        /// The quota year.
        year: i32,
        /// The quota.
        quota: u32,
    },
    /// The request itself was refused (unknown measure, bad fact) or something failed.
    #[error(transparent)]
    Request(#[from] ApiError),
}

impl From<sqlx::Error> for AwardError {
    fn from(value: sqlx::Error) -> Self {
        AwardError::Request(value.into())
    }
}

impl From<anyhow::Error> for AwardError {
    fn from(value: anyhow::Error) -> Self {
        AwardError::Request(value.into())
    }
}

impl From<AwardError> for ApiError {
    fn from(err: AwardError) -> Self {
        let detail = err.to_string();
        match err {
            AwardError::NotEligible { .. }
            | AwardError::NothingToAward(_)
            | AwardError::AlreadyAwardedOnce(_) => ApiError::new(ErrorCode::NotEligible, detail),
            AwardError::QuotaExhausted { .. } => ApiError::new(ErrorCode::QuotaExhausted, detail),
            AwardError::Request(e) => e,
        }
    }
}

/// Records an award: evaluates it with the register's own facts, refuses it when not eligible
/// or when the measure's quota for the year is reached, and writes it with an `award.record`
/// audit entry in one transaction. Reviewers only.
#[utoipa::path(post, path = "/api/rules/awards", tag = "rules", request_body = AwardRequest,
    security(("bearer" = [])),
    responses((status = 201, body = Award),
        (status = 403, body = voucher_core::error::Problem, description = "not a reviewer"),
        (status = 404, body = voucher_core::error::Problem, description = "unknown measure, or not in force on `date`"),
        (status = 409, body = voucher_core::error::Problem, description = "`quota_exhausted`: the measure's annual quota is reached"),
        (status = 422, body = voucher_core::error::Problem, description = "`not_eligible`, or `validation_failed` naming a fact")))]
pub async fn record_award(
    State(state): State<AppState>,
    session: BureauSession,
    Json(request): Json<AwardRequest>,
) -> Result<(StatusCode, Json<Award>), ApiError> {
    session.require(&[Role::Reviewer])?;
    let date = parse_date("date", Some(&request.date))?;
    let award = record(&state, &session, date, request).await?;
    Ok((StatusCode::CREATED, Json(award)))
}

/// The use case behind [`record_award`]; owns the transaction.
async fn record(
    state: &AppState,
    session: &BureauSession,
    date: Date,
    request: AwardRequest,
) -> Result<Award, AwardError> {
    let year = date.year();
    if !YEARS.contains(&year) {
        return Err(ApiError::validation(
            "date",
            format!(
                "awards are recorded for the years {} to {}",
                YEARS.start(),
                YEARS.end()
            ),
        )
        .into());
    }
    let measure = request.measure.as_str();
    let uscc = request.applicant_uscc.as_str();
    let mut tx = state.db.begin().await?;
    let supplied = register_facts(&mut tx, measure, uscc).await?;
    let mut facts = request.facts;
    let mut register_steps = Vec::new();
    if let Value::Object(map) = &mut facts {
        for (name, value, step) in supplied {
            let sent = map.insert(name.to_owned(), value.clone());
            let caller = match &sent {
                Some(v) if *v == value => format!("调用方相同 caller sent the same ({v})"),
                Some(v) => format!("调用方的 {v} 已被覆盖 caller's {v} overridden"),
                None => "调用方未提供 caller did not send it".to_owned(),
            };
            register_steps.push((step, format!("{value}；{caller}")));
        }
    }
    let mut evaluation = evaluate_measure(state, measure, date, &facts)?;
    let clause = evaluation
        .trace
        .first()
        .map(|s| s.clause.clone())
        .unwrap_or_default();
    // The register's steps go after the clause and the version, before the tests they feed.
    let at = evaluation.trace.len().min(2);
    evaluation.trace.splice(
        at..at,
        register_steps.into_iter().map(|(step, value)| TraceStep {
            clause: clause.clone(),
            step,
            value,
        }),
    );
    if !evaluation.eligible {
        let unmet: Vec<&str> = evaluation
            .trace
            .iter()
            .filter(|s| s.value.contains("不符合 not met"))
            .map(|s| s.step.as_str())
            .collect();
        return Err(AwardError::NotEligible {
            measure: measure.to_owned(),
            date,
            unmet: if unmet.is_empty() {
                "see the evaluation's trace".to_owned()
            } else {
                unmet.join("; ")
            },
        });
    }
    if evaluation.award.is_zero() {
        return Err(AwardError::NothingToAward(measure.to_owned()));
    }
    let quota = evaluation
        .annual_quota
        .map(i32::try_from)
        .transpose()
        .map_err(anyhow::Error::from)?;
    let trace = serde_json::to_value(&evaluation.trace).map_err(anyhow::Error::from)?;
    let inserted = sqlx::query_as!(
        AwardRow,
        r#"insert into awards (id, measure, award_date, year, applicant_uscc, award, policy_version,
                               params_hash, annual_quota, facts, trace, recorded_at, recorded_by)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           returning id, measure, award_date, year, applicant_uscc, award, policy_version,
                     params_hash, annual_quota, facts, trace, recorded_at, recorded_by"#,
        Uuid::now_v7(),
        measure,
        date,
        year,
        uscc,
        evaluation.award.as_decimal(),
        evaluation.policy_version,
        evaluation.params_hash,
        quota,
        facts,
        trace,
        state.clock.now(),
        session.username,
    )
    .fetch_one(&mut *tx)
    .await;
    let row = match inserted {
        Err(e) if is_constraint(&e, "awards_association_once") => {
            return Err(AwardError::AlreadyAwardedOnce(uscc.to_owned()));
        }
        other => other?,
    };
    audit::append(
        &mut tx,
        &session.actor(),
        "award.record",
        Some(&format!("award:{}", row.id)),
        serde_json::json!({
            "measure": measure,
            "date": date.to_string(),
            "year": year,
            "applicant_uscc": uscc,
            "award": evaluation.award,
            "policy_version": evaluation.policy_version,
            "params_hash": evaluation.params_hash,
            "annual_quota": quota,
        }),
    )
    .await?;
    // Last, so the counter row is held only until the commit.
    if !take_slot(&mut tx, measure, year, quota).await? {
        return Err(AwardError::QuotaExhausted {
            measure: measure.to_owned(),
            year,
            quota: evaluation.annual_quota.unwrap_or(0),
        });
    }
    tx.commit().await?;
    Ok(row.into_award()?)
}

/// The facts the register knows itself for `measure`, each with the trace step saying so.
///
/// For [`ASSOCIATION`]: `previously_awarded` is whether the register holds an association award
/// for the applicant in any year. The applicant's awards are serialised first (a transaction
/// advisory lock on the USCC, held to the commit), so two concurrent requests cannot both read
/// "not awarded"; the `awards_association_once` index is the backstop.
async fn register_facts(
    conn: &mut PgConnection,
    measure: &str,
    uscc: &str,
) -> Result<Vec<(&'static str, Value, String)>, ApiError> {
    if measure != ASSOCIATION {
        return Ok(Vec::new());
    }
    let key = format!("award:{ASSOCIATION}:{uscc}");
    sqlx::query!(
        r#"select 1 as "locked!" from pg_advisory_xact_lock(hashtextextended($1, 0))"#,
        key
    )
    .fetch_one(&mut *conn)
    .await?;
    // A statement of its own, after the lock: its snapshot sees every award committed before.
    let earlier = sqlx::query_scalar!(
        r#"select count(*) as "n!" from awards where measure = $1 and applicant_uscc = $2"#,
        ASSOCIATION,
        uscc
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(vec![(
        PREVIOUSLY_AWARDED,
        Value::Bool(earlier > 0),
        format!(
            "登记簿 register：{PREVIOUSLY_AWARDED} 由奖励登记簿提供 supplied by the award \
             register（登记簿中本项此前奖励 earlier awards recorded: {earlier}）"
        ),
    )])
}

/// Counts one award of `measure` in `year`, if the quota (when there is one) has room. One
/// conditional update decides, so concurrent awards queue on the counter row and the one that
/// finds it full is refused.
async fn take_slot(
    conn: &mut PgConnection,
    measure: &str,
    year: i32,
    quota: Option<i32>,
) -> Result<bool, ApiError> {
    sqlx::query!(
        r#"insert into award_counts (measure, year) values ($1, $2)
           on conflict on constraint award_counts_pkey do nothing"#,
        measure,
        year
    )
    .execute(&mut *conn)
    .await?;
    let taken = sqlx::query_scalar!(
        r#"update award_counts set awarded = awarded + 1
           where measure = $1 and year = $2 and ($3::integer is null or awarded < $3)
           returning awarded"#,
        measure,
        year,
        quota
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(taken.is_some())
}

/// The recorded awards of a year, oldest first, optionally of one measure; any bureau role.
#[utoipa::path(get, path = "/api/rules/awards", tag = "rules", params(AwardsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = [Award]),
        (status = 404, body = voucher_core::error::Problem, description = "no measure has the id given"),
        (status = 422, body = voucher_core::error::Problem, description = "`year` missing or not a year")))]
pub async fn list_awards(
    State(state): State<AppState>,
    _session: BureauSession,
    Query(q): Query<AwardsQuery>,
    page: Page,
) -> Result<(HeaderMap, Json<Vec<Award>>), ApiError> {
    let mut awards = load_awards(&state, q, page.after_or_start(), page.fetch()).await?;
    let headers = page.finish(&mut awards, |a| (a.recorded_at, a.id));
    Ok((headers, Json(awards)))
}

/// The recorded awards of a year as CSV (UTF-8 with BOM) for the register's files: measure,
/// clause, applicant, amount, date, policy version, who recorded it; a totals row.
#[utoipa::path(get, path = "/api/rules/awards.csv", tag = "rules", params(AwardsQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 404, body = voucher_core::error::Problem, description = "no measure has the id given"),
        (status = 422, body = voucher_core::error::Problem, description = "`year` missing or not a year")))]
pub async fn list_awards_csv(
    State(state): State<AppState>,
    _session: BureauSession,
    Query(q): Query<AwardsQuery>,
) -> Result<axum::response::Response, ApiError> {
    use voucher_core::export::{self, Cell};
    let year = q.year.clone().unwrap_or_default();
    let awards = load_awards(&state, q, voucher_core::page::EARLIEST, i64::MAX).await?;
    let titles: std::collections::HashMap<String, (String, String)> = state
        .rules
        .versions()
        .iter()
        .flat_map(|v| v.measures())
        .map(|m| (m.id.clone(), (m.clause.clone(), m.title.clone())))
        .collect();
    let mut total = Money::ZERO;
    let mut rows: Vec<Vec<Cell>> = Vec::with_capacity(awards.len() + 1);
    for a in &awards {
        total = total.checked_add(a.award).map_err(anyhow::Error::from)?;
        let (clause, title) = titles.get(&a.measure).cloned().unwrap_or_default();
        rows.push(vec![
            Cell::Text(a.date.clone()),
            Cell::Text(clause),
            Cell::Text(title),
            Cell::Id(a.measure.clone()),
            Cell::Id(a.applicant_uscc.clone()),
            Cell::Amount(a.award),
            Cell::Text(a.policy_version.clone()),
            Cell::Text(a.recorded_by.clone()),
            Cell::Text(export::local_time(a.recorded_at)),
        ]);
    }
    let mut totals = vec![Cell::Empty; 9];
    totals[0] = Cell::Text("合计".to_owned());
    totals[2] = Cell::Text(format!("{} 项", awards.len()));
    totals[5] = Cell::Amount(total);
    rows.push(totals);
    let headers = [
        "评估日期",
        "条款",
        "措施",
        "措施代码",
        "申请人统一社会信用代码",
        "奖励金额",
        "政策版本",
        "登记人",
        "登记时间",
    ];
    Ok(export::attachment(
        export::CSV_TYPE,
        &format!("awards-{year}.csv"),
        export::csv(&headers, &rows)?,
    ))
}

/// The year's awards (of one measure, if named) after `(recorded_at, id)`, at most `limit`.
async fn load_awards(
    state: &AppState,
    q: AwardsQuery,
    (after_at, after_id): (OffsetDateTime, Uuid),
    limit: i64,
) -> Result<Vec<Award>, ApiError> {
    let year: i32 = q
        .year
        .as_deref()
        .ok_or_else(|| ApiError::validation("year", "is required (YYYY)"))?
        .parse()
        .ok()
        .filter(|y| YEARS.contains(y))
        .ok_or_else(|| {
            ApiError::validation(
                "year",
                format!("must be a year from {} to {}", YEARS.start(), YEARS.end()),
            )
        })?;
    if let Some(measure) = q.measure.as_deref() {
        let known = state
            .rules
            .versions()
            .iter()
            .any(|v| v.measures().iter().any(|m| m.id == measure));
        if !known {
            return Err(ApiError::not_found(format!(
                "no measure has the id {measure:?}"
            )));
        }
    }
    let rows = sqlx::query_as!(
        AwardRow,
        r#"select id, measure, award_date, year, applicant_uscc, award, policy_version,
                  params_hash, annual_quota, facts, trace, recorded_at, recorded_by
           from awards
           where year = $1 and ($2::text is null or measure = $2)
             and (recorded_at, id) > ($3, $4)
           order by recorded_at, id
           limit $5"#,
        year,
        q.measure,
        after_at,
        after_id,
        limit
    )
    .fetch_all(&state.db)
    .await?;
    rows.into_iter().map(AwardRow::into_award).collect()
}

/// An `awards` row as stored.
struct AwardRow {
    id: Uuid,
    measure: String,
    award_date: Date,
    year: i32,
    applicant_uscc: String,
    award: Decimal,
    policy_version: String,
    params_hash: String,
    annual_quota: Option<i32>,
    facts: Value,
    trace: Value,
    recorded_at: OffsetDateTime,
    recorded_by: String,
}

impl AwardRow {
    fn into_award(self) -> Result<Award, ApiError> {
        let register_facts: Map<String, Value> = if self.measure == ASSOCIATION {
            self.facts
                .get(PREVIOUSLY_AWARDED)
                .map(|v| (PREVIOUSLY_AWARDED.to_owned(), v.clone()))
                .into_iter()
                .collect()
        } else {
            Map::new()
        };
        Ok(Award {
            id: self.id,
            date: self.award_date.to_string(),
            year: self.year,
            applicant_uscc: self.applicant_uscc,
            award: Money::from_decimal(self.award).map_err(anyhow::Error::from)?,
            policy_version: self.policy_version,
            params_hash: self.params_hash,
            annual_quota: self
                .annual_quota
                .map(u32::try_from)
                .transpose()
                .map_err(anyhow::Error::from)?,
            register_facts: Value::Object(register_facts),
            facts: self.facts,
            trace: serde_json::from_value(self.trace).map_err(anyhow::Error::from)?,
            recorded_at: self.recorded_at,
            recorded_by: self.recorded_by,
            measure: self.measure,
        })
    }
}
