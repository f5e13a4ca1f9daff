//! The PostgreSQL pool and the migrations.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// The one forward-only set of migrations (`migrations/`), embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// How long a request waits for a pooled connection before it is answered 503 `overloaded`
/// (the database is the bottleneck then; queueing longer helps no one).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens the pool and proves the server answers, so a wrong URL fails at start, not at the first
/// request.
pub async fn connect(options: PgConnectOptions, max_connections: u32) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.application_name("voucherd"))
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to DATABASE_URL: {e}"))?;
    Ok(pool)
}

/// Refuses to serve on a schema that is behind the binary (or ahead of it), or whose applied
/// migrations differ from the binary's (an edited migration, so functions such as
/// `redeem_voucher` may not be what this binary expects): the answer is `voucherd migrate` or a
/// repair, not a confusing SQL error, or silently wrong money, on the first request. Each
/// refusal is one line naming what differs.
pub async fn check_schema(pool: &PgPool) -> anyhow::Result<()> {
    let applied: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        r#"select version, checksum from _sqlx_migrations where success order by version"#,
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    schema_matches(&applied, &MIGRATOR)
}

/// The decision of [`check_schema`] on the applied `(version, checksum)` pairs.
pub fn schema_matches(applied: &[(i64, Vec<u8>)], migrator: &Migrator) -> anyhow::Result<()> {
    let expected: Vec<i64> = migrator.iter().map(|m| m.version).collect();
    let versions: Vec<i64> = applied.iter().map(|(v, _)| *v).collect();
    if versions != expected {
        anyhow::bail!(
            "the database schema does not match this binary ({} of {} migrations applied): run `voucherd migrate`",
            versions.iter().filter(|v| expected.contains(v)).count(),
            expected.len()
        );
    }
    for ((version, checksum), migration) in applied.iter().zip(migrator.iter()) {
        if checksum.as_slice() != migration.checksum.as_ref() {
            anyhow::bail!(
                "migration {version:04} ({}) applied to this database differs from this binary's (checksum mismatch): refusing to serve; a landed migration was edited",
                migration.description
            );
        }
    }
    Ok(())
}

/// Whether Postgres answers within a second; `/readyz` uses it.
pub async fn ping(pool: &PgPool) -> bool {
    let probe = sqlx::query_scalar::<_, i32>("select 1").fetch_one(pool);
    matches!(
        tokio::time::timeout(Duration::from_secs(1), probe).await,
        Ok(Ok(1))
    )
}
