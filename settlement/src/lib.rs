//! `voucher-settlement`: the nightly job, reconciliation, monthly statements, exports.

pub mod api;
pub mod job;
pub mod metrics;
pub mod reconcile;
pub mod statements;
pub mod views;

use std::io::IsTerminal;

use axum::routing::{get, post};
use axum::Router;
use sqlx::PgPool;
use time::Date;
use voucher_core::AppState;

pub use job::{parse_business_date, Report};

/// This part's routes.
pub fn router(state: AppState) -> Router {
    let _ = state
        .metrics
        .registry()
        .register(Box::new(metrics::INVARIANTS_BROKEN.clone()));
    Router::new()
        .route(
            "/api/bureau/settlement-runs",
            post(api::run).get(api::list_runs),
        )
        .route(
            "/api/bureau/settlement-runs/{business_date}",
            get(api::get_run),
        )
        .route("/api/bureau/statements", post(api::close).get(api::list))
        .route("/api/bureau/statements/{id}/approve", post(api::approve))
        .route("/api/bureau/statements/{id}/payment", post(api::pay))
        .route("/api/bureau/statements/{id}/lines.csv", get(api::lines_csv))
        .route(
            "/api/bureau/statements/{id}/lines.xlsx",
            get(api::lines_xlsx),
        )
        .route("/api/bureau/stats", get(api::stats))
        .route("/v1/statements", get(api::platform_statement))
        .route(
            "/v1/statements/{id}/reconciliation",
            post(api::reconcile_upload),
        )
        .with_state(state)
}

/// The OpenAPI document of this part's routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    api::run,
    api::get_run,
    api::list_runs,
    api::close,
    api::list,
    api::approve,
    api::pay,
    api::lines_csv,
    api::lines_xlsx,
    api::platform_statement,
    api::reconcile_upload,
    api::stats,
))]
pub struct ApiDoc;

/// Runs the job for `date` from the command line, with a progress bar when stderr is a
/// terminal.
pub async fn run_with_progress(pool: &PgPool, date: Date) -> anyhow::Result<Report> {
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(job::STEPS.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("settle {msg:10} [{bar:30}] {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Some(bar)
    } else {
        None
    };
    let report = job::run_steps(pool, date, None, &|i, name| {
        if let Some(bar) = &bar {
            bar.set_position(i as u64);
            bar.set_message(name.to_owned());
        }
    })
    .await?;
    if let Some(bar) = &bar {
        bar.finish_with_message("done");
    }
    report.ok_or_else(|| anyhow::anyhow!("a full run returned no report"))
}

/// Schedules the nightly job at 02:00 Asia/Shanghai for the business day just ended. Every
/// replica may schedule it: the advisory lock lets one run, the others find it taken and skip,
/// and a second run of the same date changes nothing.
pub async fn spawn_nightly(pool: PgPool) -> anyhow::Result<tokio_cron_scheduler::JobScheduler> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let scheduler = JobScheduler::new().await?;
    let shanghai =
        chrono::FixedOffset::east_opt(8 * 3600).ok_or_else(|| anyhow::anyhow!("offset"))?;
    let job = Job::new_async_tz("0 0 2 * * *", shanghai, move |_, _| {
        let pool = pool.clone();
        Box::pin(async move {
            let today = time::OffsetDateTime::now_utc()
                .to_offset(voucher_core::state::SHANGHAI)
                .date();
            let date = today - time::Duration::days(1);
            match job::run_steps(&pool, date, None, &|_, _| {}).await {
                Ok(Some(report)) => {
                    let broken = report.invariants.iter().filter(|i| !i.ok).count();
                    tracing::info!(settlement.business_date = %date, invariants.broken = broken, "nightly settlement done");
                }
                Ok(None) => {}
                Err(e) if e.is::<job::InProgress>() => {
                    tracing::info!(settlement.business_date = %date, "another replica is running settlement; this one skips");
                }
                Err(e) => {
                    tracing::error!(settlement.business_date = %date, error = %e, "nightly settlement failed; run `voucherd settle --date` after fixing")
                }
            }
        })
    })?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    Ok(scheduler)
}
