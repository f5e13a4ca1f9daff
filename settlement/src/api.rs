//! Settlement over HTTP: runs and statements for the bureau, statements for the platforms.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use voucher_core::auth::{BureauSession, Role};
use voucher_core::export;
use voucher_core::extract::{Path, Query};
use voucher_core::json::read_body;
use voucher_core::page::Page;
use voucher_core::platform::PlatformKey;
use voucher_core::state::SHANGHAI;
use voucher_core::{ApiError, AppState, ErrorCode, Json, Money};

use crate::job::{self, Report};
use crate::views::{self, Filter, Statement};
use crate::{exports, statements};

/// Which business date to run.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// `YYYY-MM-DD`, Asia/Shanghai; not in the future.
    pub business_date: String,
}

fn business_date(state: &AppState, text: &str) -> Result<time::Date, ApiError> {
    let date = job::parse_business_date(text)
        .map_err(|_| ApiError::validation("business_date", "must be YYYY-MM-DD"))?;
    if date > state.clock.now().to_offset(SHANGHAI).date() {
        return Err(ApiError::validation("business_date", "is in the future"));
    }
    Ok(date)
}

/// Runs the nightly job for a business date now (reviewers only); running it again
/// gives the same report and changes nothing more.
#[utoipa::path(post, path = "/api/bureau/settlement-runs", tag = "bureau", request_body = RunRequest,
    security(("bearer" = [])),
    responses((status = 200, body = Report), (status = 403, body = voucher_core::error::Problem),
        (status = 409, body = voucher_core::error::Problem, description = "`invalid_transition`: a run is in progress")))]
pub async fn run(
    State(state): State<AppState>,
    session: BureauSession,
    Json(request): Json<RunRequest>,
) -> Result<Json<Report>, ApiError> {
    session.require(&[Role::Reviewer])?;
    let date = business_date(&state, &request.business_date)?;
    // The run is a task of its own, which the request only waits for: a client that goes away
    // (a proxy timeout shorter than a run) does not cancel it half-way.
    let (db, now) = (state.db.clone(), state.clock.now());
    let run =
        tokio::spawn(async move { job::run_steps_at(&db, date, now, None, &|_, _| {}).await });
    let outcome = run
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("the settlement task failed: {e}")))?;
    match outcome {
        Ok(Some(report)) => Ok(Json(report)),
        Ok(None) => Err(ApiError::internal(anyhow::anyhow!(
            "a full run returned no report"
        ))),
        Err(e) if e.is::<job::InProgress>() => Err(ApiError::new(
            ErrorCode::InvalidTransition,
            "a settlement run is in progress; ask again when it has finished",
        )),
        Err(e) => Err(e.into()),
    }
}

/// The report of a date's latest run.
#[utoipa::path(get, path = "/api/bureau/settlement-runs/{business_date}", tag = "bureau",
    params(("business_date" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Report), (status = 404, body = voucher_core::error::Problem)))]
pub async fn get_run(
    State(state): State<AppState>,
    _session: BureauSession,
    Path(text): Path<String>,
) -> Result<Json<Report>, ApiError> {
    // A path segment that is no date names no run (API.md: a path id that does not parse is
    // `not_found`).
    let date = job::parse_business_date(&text)
        .map_err(|_| ApiError::not_found(format!("no settlement run for {text}")))?;
    job::stored(&state.db, date)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no settlement run for {text}")))
}

/// A run as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    /// `YYYY-MM-DD`.
    pub business_date: String,
    /// How many times it ran.
    pub runs: i32,
    /// Whether every invariant held at the latest run.
    pub ok: bool,
    /// When it last ran.
    #[serde(with = "time::serde::rfc3339")]
    pub last_run_at: time::OffsetDateTime,
}

/// The runs, newest first (paged).
#[utoipa::path(get, path = "/api/bureau/settlement-runs", tag = "bureau", security(("bearer" = [])),
    responses((status = 200, body = [RunSummary])))]
pub async fn list_runs(
    State(state): State<AppState>,
    _session: BureauSession,
    page: Page<time::Date>,
) -> Result<(HeaderMap, Json<Vec<RunSummary>>), ApiError> {
    let before = page.after_or(time::Date::MAX);
    let mut rows = sqlx::query!(
        r#"select business_date, runs, last_run_at,
                  not exists (select 1 from jsonb_array_elements(report -> 'invariants') i
                              where (i ->> 'ok')::boolean is false) as "ok!"
           from settlement_runs where business_date < $1
           order by business_date desc limit $2"#,
        before,
        page.fetch()
    )
    .fetch_all(&state.db)
    .await?;
    let headers = page.finish(&mut rows, |r| r.business_date);
    let runs = rows
        .into_iter()
        .map(|r| RunSummary {
            business_date: r.business_date.to_string(),
            runs: r.runs,
            ok: r.ok,
            last_run_at: r.last_run_at,
        })
        .collect();
    Ok((headers, Json(runs)))
}

/// Which month to close.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// `YYYY-MM`: a past month or the current one.
    pub month: String,
}

fn month(state: &AppState, text: Option<&str>) -> Result<String, ApiError> {
    let text = text.ok_or_else(|| ApiError::validation("month", "is required (YYYY-MM)"))?;
    let (start, _) = statements::month_bounds(text)
        .ok_or_else(|| ApiError::validation("month", "must be YYYY-MM"))?;
    if start > state.clock.now() {
        return Err(ApiError::validation("month", "is in the future"));
    }
    Ok(text.to_owned())
}

/// Closes a month now (reviewers only): one draft statement per platform with redemptions in
/// it (idempotent).
#[utoipa::path(post, path = "/api/bureau/statements", tag = "bureau", request_body = CloseRequest,
    security(("bearer" = [])), responses((status = 200, body = [Statement])))]
pub async fn close(
    State(state): State<AppState>,
    session: BureauSession,
    Json(request): Json<CloseRequest>,
) -> Result<Json<Vec<Statement>>, ApiError> {
    session.require(&[Role::Reviewer])?;
    let month = month(&state, Some(&request.month))?;
    statements::close_month(&state.db, &month, &session.actor(), state.clock.now()).await?;
    Ok(Json(views::load(&state.db, Filter::Month(&month)).await?))
}

/// Which month.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthQuery {
    /// `YYYY-MM`.
    pub month: Option<String>,
}

/// The month's statements, by platform name (paged).
#[utoipa::path(get, path = "/api/bureau/statements", tag = "bureau", params(MonthQuery),
    security(("bearer" = [])), responses((status = 200, body = [Statement])))]
pub async fn list(
    State(state): State<AppState>,
    _session: BureauSession,
    Query(q): Query<MonthQuery>,
    page: Page<(String, Uuid)>,
) -> Result<(HeaderMap, Json<Vec<Statement>>), ApiError> {
    let month = required_month(q)?;
    let after = page.after_or_start();
    let mut list = views::load(&state.db, Filter::MonthPage(&month, after, page.fetch())).await?;
    let headers = page.finish(&mut list, |s| (s.platform_name.clone(), s.id));
    Ok((headers, Json(list)))
}

async fn one(state: &AppState, id: Uuid) -> Result<Statement, ApiError> {
    views::load(&state.db, Filter::Id(id))
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("no such statement"))
}

/// Approves a draft (finance only); the month's redemptions on it are locked.
#[utoipa::path(post, path = "/api/bureau/statements/{id}/approve", tag = "bureau",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = Statement), (status = 403, body = voucher_core::error::Problem),
        (status = 409, body = voucher_core::error::Problem, description = "`invalid_transition`")))]
pub async fn approve(
    State(state): State<AppState>,
    session: BureauSession,
    Path(id): Path<Uuid>,
) -> Result<Json<Statement>, ApiError> {
    session.require(&[Role::Finance])?;
    statements::approve(&state.db, id, &session.actor(), state.clock.now()).await?;
    Ok(Json(one(&state, id).await?))
}

/// The payment made.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// The bank or treasury reference, 1 to 100 characters.
    pub reference: String,
}

/// Records the payment of an approved statement (finance only, and not the officer who
/// approved it: 403 `separation_of_duties`).
#[utoipa::path(post, path = "/api/bureau/statements/{id}/payment", tag = "bureau",
    params(("id" = Uuid, Path)), request_body = Payment, security(("bearer" = [])),
    responses((status = 200, body = Statement), (status = 403, body = voucher_core::error::Problem),
        (status = 403, body = voucher_core::error::Problem, description = "`separation_of_duties`"),
        (status = 409, body = voucher_core::error::Problem, description = "`invalid_transition`")))]
pub async fn pay(
    State(state): State<AppState>,
    session: BureauSession,
    Path(id): Path<Uuid>,
    Json(payment): Json<Payment>,
) -> Result<Json<Statement>, ApiError> {
    session.require(&[Role::Finance])?;
    statements::pay(
        &state.db,
        id,
        &payment.reference,
        &session.actor(),
        state.clock.now(),
    )
    .await?;
    Ok(Json(one(&state, id).await?))
}

/// The statement's lines as CSV.
#[utoipa::path(get, path = "/api/bureau/statements/{id}/lines.csv", tag = "bureau",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String)))]
pub async fn lines_csv(
    State(state): State<AppState>,
    _session: BureauSession,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let s = one(&state, id).await?;
    Ok(export::attachment(
        export::CSV_TYPE,
        &format!("statement-{}-{}.csv", s.month, s.id),
        exports::statement_csv(&s)?,
    ))
}

/// The statement's lines as XLSX.
#[utoipa::path(get, path = "/api/bureau/statements/{id}/lines.xlsx", tag = "bureau",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>)))]
pub async fn lines_xlsx(
    State(state): State<AppState>,
    _session: BureauSession,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let s = one(&state, id).await?;
    Ok(export::attachment(
        export::XLSX_TYPE,
        &format!("statement-{}-{}.xlsx", s.month, s.id),
        exports::statement_xlsx(&s)?,
    ))
}

/// The `month` query parameter, required and `YYYY-MM`.
fn required_month(q: MonthQuery) -> Result<String, ApiError> {
    let text = q
        .month
        .ok_or_else(|| ApiError::validation("month", "is required (YYYY-MM)"))?;
    statements::month_bounds(&text)
        .ok_or_else(|| ApiError::validation("month", "must be YYYY-MM"))?;
    Ok(text)
}

/// The month's summary for finance as CSV: one row per platform's statement (status, lines,
/// bills, discounts, approver, payment) and a totals row.
#[utoipa::path(get, path = "/api/bureau/statements/summary.csv", tag = "bureau",
    params(MonthQuery), security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 422, body = voucher_core::error::Problem)))]
pub async fn summary_csv(
    State(state): State<AppState>,
    _session: BureauSession,
    Query(q): Query<MonthQuery>,
) -> Result<Response, ApiError> {
    let month = required_month(q)?;
    let list = views::load(&state.db, Filter::Month(&month)).await?;
    Ok(export::attachment(
        export::CSV_TYPE,
        &format!("statements-{month}-summary.csv"),
        exports::summary_csv(&list)?,
    ))
}

/// The month's summary for finance as XLSX: the summary sheet (one row per platform's
/// statement) and a sheet with every line of the month.
#[utoipa::path(get, path = "/api/bureau/statements/summary.xlsx", tag = "bureau",
    params(MonthQuery), security(("bearer" = [])),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>),
        (status = 422, body = voucher_core::error::Problem)))]
pub async fn summary_xlsx(
    State(state): State<AppState>,
    _session: BureauSession,
    Query(q): Query<MonthQuery>,
) -> Result<Response, ApiError> {
    let month = required_month(q)?;
    let list = views::load(&state.db, Filter::Month(&month)).await?;
    Ok(export::attachment(
        export::XLSX_TYPE,
        &format!("statements-{month}-summary.xlsx"),
        exports::summary_xlsx(&month, &list)?,
    ))
}

/// The calling platform's statement for a month.
#[utoipa::path(get, path = "/v1/statements", tag = "platform", params(MonthQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Statement), (status = 404, body = voucher_core::error::Problem)))]
pub async fn platform_statement(
    State(state): State<AppState>,
    key: PlatformKey,
    Query(q): Query<MonthQuery>,
) -> Result<Json<Statement>, ApiError> {
    let text = required_month(q)?;
    views::load(&state.db, Filter::PlatformMonth(key.platform_id, &text))
        .await?
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no statement for {text} yet")))
}

/// A line the two lists disagree on.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Mismatch {
    /// Invoice number.
    pub invoice_no: String,
    /// The statement's discount.
    pub statement: Money,
    /// The platform's.
    pub upload: Money,
}

/// A line only one side has.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OneSided {
    /// Invoice number.
    pub invoice_no: String,
    /// Its discount.
    pub discount: Money,
}

/// The comparison of a platform's own list with its statement.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Reconciliation {
    /// The statement compared.
    pub statement_id: Uuid,
    /// Lines on both with the same discount.
    pub matched: usize,
    /// Their total.
    pub matched_total: Money,
    /// On the platform's list, not on the statement.
    pub missing_in_statement: Vec<OneSided>,
    /// On the statement, not on the platform's list.
    pub missing_in_upload: Vec<OneSided>,
    /// On both with different discounts.
    pub amount_mismatch: Vec<Mismatch>,
}

/// Compares the platform's own list (CSV `invoice_no,discount`, optional header row) with its
/// statement and returns the differences.
#[utoipa::path(post, path = "/v1/statements/{id}/reconciliation", tag = "platform",
    params(("id" = Uuid, Path)), request_body(content = String, content_type = "text/csv"),
    security(("bearer" = [])),
    responses((status = 200, body = Reconciliation), (status = 404, body = voucher_core::error::Problem),
        (status = 422, body = voucher_core::error::Problem)))]
pub async fn reconcile_upload(
    State(state): State<AppState>,
    key: PlatformKey,
    Path(id): Path<Uuid>,
    request: Request,
) -> Result<Json<Reconciliation>, ApiError> {
    let statement = one(&state, id).await?;
    if statement.platform_id != key.platform_id {
        return Err(ApiError::not_found("no such statement"));
    }
    let body = read_body(request).await?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(body.as_ref());
    let mut upload: BTreeMap<String, Money> = BTreeMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 1;
        let record =
            record.map_err(|e| ApiError::validation(format!("line {line}"), e.to_string()))?;
        if record.len() != 2 {
            return Err(ApiError::validation(
                format!("line {line}"),
                "expected invoice_no,discount",
            ));
        }
        if line == 1 && &record[0] == "invoice_no" && &record[1] == "discount" {
            continue;
        }
        let invoice = record[0].to_owned();
        if invoice.is_empty() {
            return Err(ApiError::validation(
                format!("line {line}"),
                "invoice_no is empty",
            ));
        }
        let discount = Money::parse(&record[1])
            .map_err(|e| ApiError::validation(format!("line {line}"), format!("discount {e}")))?;
        if upload.insert(invoice.clone(), discount).is_some() {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                format!("line {line}: invoice {invoice} appears twice"),
            ));
        }
    }
    let ours: BTreeMap<String, Money> = statement
        .lines
        .iter()
        .map(|l| (l.invoice_no.clone(), l.discount))
        .collect();
    let mut result = Reconciliation {
        statement_id: id,
        matched: 0,
        matched_total: Money::ZERO,
        missing_in_statement: Vec::new(),
        missing_in_upload: Vec::new(),
        amount_mismatch: Vec::new(),
    };
    for (invoice, theirs) in &upload {
        match ours.get(invoice) {
            Some(mine) if mine == theirs => {
                result.matched += 1;
                result.matched_total = result
                    .matched_total
                    .checked_add(*mine)
                    .map_err(anyhow::Error::from)?;
            }
            Some(mine) => result.amount_mismatch.push(Mismatch {
                invoice_no: invoice.clone(),
                statement: *mine,
                upload: *theirs,
            }),
            None => result.missing_in_statement.push(OneSided {
                invoice_no: invoice.clone(),
                discount: *theirs,
            }),
        }
    }
    for (invoice, mine) in &ours {
        if !upload.contains_key(invoice) {
            result.missing_in_upload.push(OneSided {
                invoice_no: invoice.clone(),
                discount: *mine,
            });
        }
    }
    Ok(Json(result))
}

/// Which year.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct YearQuery {
    /// Calendar year.
    pub year: Option<i32>,
}

/// Redemptions (net of reversals) in one period.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Period {
    /// `YYYY-MM-DD` or `YYYY-MM`.
    pub period: String,
    /// Active redemptions made in it.
    pub redemptions: i64,
    /// Their discounts.
    pub discount: Money,
}

/// Redemptions per day and per month of a program year, for the console's charts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// The year.
    pub year: i32,
    /// Per day (Asia/Shanghai), days with redemptions only.
    pub per_day: Vec<Period>,
    /// Per month.
    pub per_month: Vec<Period>,
}

/// Redemptions per day and month of a year (every role).
#[utoipa::path(get, path = "/api/bureau/stats", tag = "bureau", params(YearQuery),
    security(("bearer" = [])), responses((status = 200, body = Stats)))]
pub async fn stats(
    State(state): State<AppState>,
    _session: BureauSession,
    Query(q): Query<YearQuery>,
) -> Result<Json<Stats>, ApiError> {
    let year = q.year.unwrap_or_else(|| state.clock.program_year());
    let rows = sqlx::query!(
        r#"select to_char(created_at at time zone 'Asia/Shanghai', 'YYYY-MM-DD') as "day!",
                  count(*) as "n!", sum(discount) as "discount!"
           from redemptions where year = $1 and status = 'active'
           group by 1 order by 1"#,
        year
    )
    .fetch_all(&state.db)
    .await?;
    let mut per_day = Vec::with_capacity(rows.len());
    let mut per_month: Vec<Period> = Vec::new();
    for r in rows {
        let discount = Money::from_decimal(r.discount).map_err(anyhow::Error::from)?;
        let month = r.day[..7].to_owned();
        match per_month.last_mut() {
            Some(last) if last.period == month => {
                last.redemptions += r.n;
                last.discount = last
                    .discount
                    .checked_add(discount)
                    .map_err(anyhow::Error::from)?;
            }
            _ => per_month.push(Period {
                period: month,
                redemptions: r.n,
                discount,
            }),
        }
        per_day.push(Period {
            period: r.day,
            redemptions: r.n,
            discount,
        });
    }
    Ok(Json(Stats {
        year,
        per_day,
        per_month,
    }))
}
