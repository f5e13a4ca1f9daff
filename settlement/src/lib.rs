//! `voucher-settlement`: the nightly job, reconciliation, monthly statements, exports.

pub mod api;
pub mod exports;
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
        .route("/api/bureau/statements/summary.csv", get(api::summary_csv))
        .route(
            "/api/bureau/statements/summary.xlsx",
            get(api::summary_xlsx),
        )
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
    api::summary_csv,
    api::summary_xlsx,
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
/// replica schedules it; [`job::nightly_once`] lets one run and the others skip. A try that fails
/// (the primary died under it: its advisory lock died with its connection) is tried again after
/// [`NIGHTLY_RETRY`], and a replica that found another one running looks again after
/// [`NIGHTLY_RECHECK`], so the day is settled even when the replica running it dies half-way;
/// every step is safe to run again.
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
            nightly_with_retries(&pool, today - time::Duration::days(1)).await;
        })
    })?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    Ok(scheduler)
}

/// How long a replica waits after a failed nightly try before the next.
pub const NIGHTLY_RETRY: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a replica that found another one running waits before it looks again.
pub const NIGHTLY_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);
/// Tries before a replica gives up on a night (about three hours at the longer wait).
const NIGHTLY_TRIES: u32 = 180;

/// The nightly job for `date` on this replica, until the date is settled here or elsewhere.
pub async fn nightly_with_retries(pool: &PgPool, date: Date) {
    for attempt in 1..=NIGHTLY_TRIES {
        match job::nightly_once(pool, date).await {
            Ok(job::Nightly::Ran(report)) => {
                let broken = report.invariants.iter().filter(|i| !i.ok).count();
                tracing::info!(settlement.business_date = %date, invariants.broken = broken, attempt, "nightly settlement done");
                return;
            }
            Ok(job::Nightly::AlreadySettled) => {
                tracing::info!(settlement.business_date = %date, "the date is settled; this replica skips");
                return;
            }
            Ok(job::Nightly::OtherReplica) => {
                tracing::info!(settlement.business_date = %date, "another replica is running settlement; looking again later");
                tokio::time::sleep(NIGHTLY_RECHECK).await;
            }
            Err(e) => {
                tracing::warn!(settlement.business_date = %date, error = %e, attempt, "nightly settlement try failed (a failover?); trying again");
                tokio::time::sleep(NIGHTLY_RETRY).await;
            }
        }
    }
    tracing::error!(settlement.business_date = %date, "nightly settlement gave up; run `voucherd settle --date` after fixing");
}
