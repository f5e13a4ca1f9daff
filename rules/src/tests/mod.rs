//! Tests of the rules crate. The measure cases are data (`cases/*.toml`, one table per measure,
//! each case naming its clause), run by one test in `cases.rs`; the other modules test the
//! catalogue's loading, version choice and the boundary words directly.

mod boundary;
mod cases;
mod catalogue;
mod evaluate;
