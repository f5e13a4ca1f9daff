//! What can go wrong loading the policy files and evaluating a measure.
//!
//! Load errors mean the shipped parameters are wrong and the service must not start; evaluation
//! errors are the caller's (404 for [`EvalError::UnknownMeasure`] and [`EvalError::NotInForce`],
//! 422 naming the fact for the other two, API.md "Rules").

use time::Date;

/// A policy data file was refused. The service must not run on parameters it could not read in
/// full: a silently ignored block would change awards without anyone noticing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file is not valid TOML, or has an unknown key, an unknown measure id, an unknown
    /// boundary word, or a value that does not parse.
    #[error("{file}: {message}")]
    Parse {
        /// Which file (its path in the repo, or its position among the sources given).
        file: String,
        /// The parser's message, with the offending key or line.
        message: String,
    },
    /// The file parsed but its values contradict each other (a tier above its cap, a version
    /// ending before it starts, two versions with one id or overlapping dates).
    #[error("{file}: {message}")]
    Invalid {
        /// Which file.
        file: String,
        /// What is inconsistent.
        message: String,
    },
}

/// Why a measure could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// No measure of either version has this id.
    #[error("unknown measure {0:?}")]
    UnknownMeasure(String),
    /// The measure exists, but not in the version in force on `date` (or no version is).
    #[error("measure {measure:?} is not in force on {date}")]
    NotInForce {
        /// The measure asked for.
        measure: String,
        /// The date asked for.
        date: Date,
    },
    /// A fact the measure needs is absent.
    #[error("missing fact {0:?}")]
    MissingFact(String),
    /// A fact is present but ill-typed, out of range, or not one the measure knows.
    #[error("invalid fact {fact:?}: {reason}")]
    InvalidFact {
        /// The fact's JSON name (`"facts"` when the facts are not a JSON object).
        fact: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl EvalError {
    /// The fact an error names, for the 422 body's field; `None` for the 404 kinds.
    pub fn fact(&self) -> Option<&str> {
        match self {
            EvalError::MissingFact(fact) | EvalError::InvalidFact { fact, .. } => Some(fact),
            EvalError::UnknownMeasure(_) | EvalError::NotInForce { .. } => None,
        }
    }

    pub(crate) fn invalid(fact: &str, reason: impl Into<String>) -> EvalError {
        EvalError::InvalidFact {
            fact: fact.to_owned(),
            reason: reason.into(),
        }
    }
}
