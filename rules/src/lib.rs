//! The policy measures of 深宝发〔2021〕1号 and its revision (see `../shared/MEASURES.md`).
//!
//! Pure: no I/O, no clock, no async. Callers pass the date and the facts.

pub mod amount;

pub use amount::{floor_fen, parse_amount, AmountError};
