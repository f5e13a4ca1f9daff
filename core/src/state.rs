//! What every handler can reach.

use sqlx::PgPool;

use crate::cache::Redis;
use crate::telemetry::Metrics;

/// Shared state of one server (cheap to clone: every field is a handle).
#[derive(Clone)]
pub struct AppState {
    /// The system of record.
    pub db: PgPool,
    /// Throttling and caches; may be down.
    pub redis: Redis,
    /// This server's metrics registry.
    pub metrics: Metrics,
}
