//! The policy measures of 深宝发〔2021〕1号 and its revision (see `../shared/MEASURES.md`).
//!
//! Pure: no I/O, no clock, no async. Callers pass the date and the facts. The parameters of each
//! policy version live in `rules/policy/*.toml`, compiled in and checked at [`Catalogue::load`],
//! so an award can always be traced to a clause, a version and the hash of its parameter file.
//!
//! ```ignore
//! let catalogue = Catalogue::load()?;
//! let evaluation = catalogue.evaluate("cloud_voucher", date, &facts)?;
//! ```

#![warn(missing_docs)]

pub mod amount;
mod boundary;
mod catalogue;
mod error;
mod facts;
mod measures;
mod params;
mod trace;

#[cfg(test)]
mod tests;

pub use amount::{floor_fen, parse_amount, AmountError};
pub use boundary::{BoundaryWord, Comparison, Threshold, UnknownBoundaryWord};
pub use catalogue::{Catalogue, CloudVoucherParams, MeasureInfo, PolicyVersion};
pub use error::{EvalError, LoadError};
pub use measures::MEASURE_IDS;
pub use trace::{Evaluation, TraceStep};
