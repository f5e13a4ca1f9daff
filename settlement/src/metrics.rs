//! Settlement's metrics, registered on each server's registry by [`crate::router`].

use std::sync::LazyLock;

use prometheus::{IntCounterVec, Opts};

/// `settlement_invariant_broken_total{invariant}`: every broken invariant a run found.
pub static INVARIANTS_BROKEN: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "settlement_invariant_broken_total",
            "Broken invariants found by settlement runs",
        ),
        &["invariant"],
    )
    .expect("static metric definition")
});
