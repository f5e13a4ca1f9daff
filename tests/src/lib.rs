//! `voucher-e2e`: scenarios through the composed router against real Postgres and Redis.
//!
//! Everything is in this one test binary (`cargo test -p voucher-e2e`); each `#[sqlx::test]`
//! gets a fresh migrated database.

#[cfg(test)]
mod support;

#[cfg(test)]
mod abuse;
#[cfg(test)]
mod accounts;
#[cfg(test)]
mod bureau;
#[cfg(test)]
mod concurrency;
#[cfg(test)]
mod daily;
#[cfg(test)]
mod edges;
#[cfg(test)]
mod evidence;
#[cfg(test)]
mod foundation;
#[cfg(test)]
mod invariants;
#[cfg(test)]
mod migrations;
#[cfg(test)]
mod paging;
#[cfg(test)]
mod portal;
#[cfg(test)]
mod races;
#[cfg(test)]
mod redemption;
#[cfg(test)]
mod replicas;
#[cfg(test)]
mod rules_api;
#[cfg(test)]
mod settlement;
#[cfg(test)]
mod tokens;
#[cfg(test)]
mod verification;
