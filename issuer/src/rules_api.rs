//! The rules module over HTTP (API.md, "Rules"); the award register is in `awards`.
//!
//! Evaluation is the pure `voucher_rules` catalogue in `AppState::rules`; these handlers parse
//! the request, call it and render its answer. The award register is Postgres: a reviewer
//! records an award with the evaluation that justified it, and the register decides the two
//! things a caller must not: the facts it knows itself (an association's earlier award, for the
//! one-time rule of 十(1) revised) and whether the measure's annual quota still has room, which
//! one conditional update on `award_counts` decides so that concurrent awards never pass it.

use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::Date;
use voucher_core::auth::BureauSession;
use voucher_core::extract::Query;
use voucher_core::page::Page;
use voucher_core::{ApiError, AppState, Json, Money};

/// A measure in force on a date (`GET /api/rules/measures`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Measure {
    /// The id evaluations and awards name, e.g. `application_benchmark`.
    pub id: String,
    /// Chinese title.
    pub title: String,
    /// Clause of the policy, e.g. `五(3)`.
    pub clause: String,
    /// Most awards per year in the version in force; `null` where the policy sets no cap.
    pub annual_quota: Option<u32>,
}

/// The date the measures are asked for.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MeasuresQuery {
    /// `YYYY-MM-DD`; the policy version in force on it applies.
    pub date: Option<String>,
}

/// One evaluation asked for (`POST /api/rules/evaluate`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// The measure id.
    pub measure: String,
    /// `YYYY-MM-DD`: chooses the policy version.
    #[schema(example = "2022-03-11")]
    pub date: String,
    /// The applicant's facts, by the names MEASURES.md gives each measure.
    #[schema(value_type = Object)]
    pub facts: Value,
}

/// One line of a trace: the clause, what was checked or computed, and the outcome.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraceStep {
    /// The clause the step applies, e.g. `三(1)`.
    pub clause: String,
    /// What the step checks or computes, quoting the policy.
    pub step: String,
    /// The numbers and the outcome.
    pub value: String,
}

/// A measure evaluated for one applicant on one date.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Evaluation {
    /// The measure id.
    pub measure: String,
    /// The policy version applied: `2021` or `revised`.
    pub policy_version: String,
    /// SHA-256 of the parameter file used, so an award can be tied to its exact parameters.
    pub params_hash: String,
    /// Whether every condition is met.
    pub eligible: bool,
    /// The award; `0.00` when not eligible.
    pub award: Money,
    /// Most awards of this measure per year in this version; `null` when uncapped.
    pub annual_quota: Option<u32>,
    /// The reasoning, step by step, each step citing its clause.
    pub trace: Vec<TraceStep>,
}

/// Parses a `YYYY-MM-DD` date, refusing anything else as `validation_failed` on `field`.
pub(crate) fn parse_date(field: &str, text: Option<&str>) -> Result<Date, ApiError> {
    let text = text.ok_or_else(|| ApiError::validation(field, "is required (YYYY-MM-DD)"))?;
    voucher_core::calendar::parse_date(text).ok_or_else(|| {
        ApiError::validation(
            field,
            "must be a date written YYYY-MM-DD with a year from 2000 to 2100",
        )
    })
}

/// Evaluates with the catalogue and renders the answer. Unknown measures and measures not in
/// force are 404; a missing or ill-typed fact is 422 naming the fact (API.md, "Rules").
pub(crate) fn evaluate_measure(
    state: &AppState,
    measure: &str,
    date: Date,
    facts: &Value,
) -> Result<Evaluation, ApiError> {
    let evaluation =
        state
            .rules
            .evaluate(measure, date, facts)
            .map_err(|err| match err.fact() {
                Some(fact) => ApiError::validation(fact, err.to_string()),
                None => ApiError::not_found(err.to_string()),
            })?;
    Ok(Evaluation {
        award: Money::from_decimal(evaluation.award).map_err(anyhow::Error::from)?,
        trace: evaluation
            .trace
            .into_iter()
            .map(|s| TraceStep {
                clause: s.clause,
                step: s.step,
                value: s.value,
            })
            .collect(),
        measure: evaluation.measure,
        policy_version: evaluation.policy_version,
        params_hash: evaluation.params_hash,
        eligible: evaluation.eligible,
        annual_quota: evaluation.annual_quota,
    })
}

/// The measures in force on `date`; any bureau role.
#[utoipa::path(get, path = "/api/rules/measures", tag = "rules", params(MeasuresQuery),
    security(("bearer" = [])),
    responses((status = 200, body = [Measure]),
        (status = 404, body = voucher_core::error::Problem, description = "no policy version in force on `date`"),
        (status = 422, body = voucher_core::error::Problem, description = "`date` missing or not YYYY-MM-DD")))]
pub async fn measures(
    State(state): State<AppState>,
    _session: BureauSession,
    Query(q): Query<MeasuresQuery>,
    page: Page<String>,
) -> Result<(HeaderMap, Json<Vec<Measure>>), ApiError> {
    let date = parse_date("date", q.date.as_deref())?;
    if state.rules.version_on(date).is_none() {
        return Err(ApiError::not_found(format!(
            "no policy version is in force on {date}"
        )));
    }
    let list = state
        .rules
        .measures_on(date)
        .into_iter()
        .map(|m| Measure {
            id: m.id,
            title: m.title,
            clause: m.clause,
            annual_quota: m.annual_quota,
        })
        .collect();
    // The catalogue's order, keyed by measure id: a fixed list, not rows in a table.
    let (headers, list) = page.slice(list, |m: &Measure| m.id.clone());
    Ok((headers, Json(list)))
}

/// Evaluates one measure for an applicant's facts on a date, with the trace; any bureau role.
/// Nothing is recorded.
#[utoipa::path(post, path = "/api/rules/evaluate", tag = "rules", request_body = EvaluateRequest,
    security(("bearer" = [])),
    responses((status = 200, body = Evaluation),
        (status = 404, body = voucher_core::error::Problem, description = "unknown measure, or not in force on `date`"),
        (status = 422, body = voucher_core::error::Problem, description = "a fact missing or ill-typed; `field` names it")))]
pub async fn evaluate(
    State(state): State<AppState>,
    _session: BureauSession,
    Json(request): Json<EvaluateRequest>,
) -> Result<Json<Evaluation>, ApiError> {
    let date = parse_date("date", Some(&request.date))?;
    Ok(Json(evaluate_measure(
        &state,
        &request.measure,
        date,
        &request.facts,
    )?))
}
