//! `voucher-core`: everything two parts need, so parts never depend on each other.

pub mod audit;
pub mod auth;
pub mod cache;
pub mod calendar;
pub mod code;
pub mod config;
pub mod db;
pub mod error;
pub mod export;
pub mod extract;
pub mod http;
pub mod json;
pub mod keys;
pub mod ledger;
pub mod money;
pub mod page;
pub mod passwords;
pub mod platform;
pub mod serve;
pub mod state;
pub mod telemetry;
pub mod text;
pub mod throttle;
pub mod token;
pub mod uscc;
pub mod vouchers;

pub use error::{ApiError, ErrorCode};
pub use json::Json;
pub use money::{Money, Rate};
pub use state::AppState;
pub use uscc::Uscc;
