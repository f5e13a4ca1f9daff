//! `voucherd rules list|eval`: the rules module from the command line, for reviewers who want
//! an award and its trace without the console.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use time::macros::format_description;
use time::Date;
use voucher_rules::{Catalogue, EvalError};

/// The rules subcommands.
#[derive(Subcommand)]
pub enum RulesCommand {
    /// The measures in force on a date.
    List {
        /// YYYY-MM-DD.
        #[arg(long)]
        date: String,
    },
    /// Evaluate one measure on a date with facts from a JSON file ('-' for standard input).
    Eval {
        /// Measure id, e.g. cloud_voucher.
        #[arg(long)]
        measure: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// JSON object of facts.
        #[arg(long)]
        facts: PathBuf,
    },
}

fn date(text: &str) -> anyhow::Result<Date> {
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map_err(|_| anyhow::anyhow!("--date must be YYYY-MM-DD, got {text:?}"))
}

/// Runs a rules subcommand; exit 1 when the measure is unknown, not in force, or a fact is bad.
pub fn run(command: RulesCommand) -> anyhow::Result<ExitCode> {
    let catalogue = Catalogue::load().map_err(|e| anyhow::anyhow!("policy parameters: {e}"))?;
    match command {
        RulesCommand::List { date: d } => {
            let on = date(&d)?;
            let Some(version) = catalogue.version_on(on) else {
                println!("no policy version is in force on {d}");
                return Ok(ExitCode::FAILURE);
            };
            println!(
                "policy version {} ({}) on {d}:",
                version.id(),
                version.document()
            );
            for m in catalogue.measures_on(on) {
                let quota = m
                    .annual_quota
                    .map(|q| format!("at most {q} a year"))
                    .unwrap_or_else(|| "no annual quota".to_owned());
                println!("  {:<32} {} {} — {quota}", m.id, m.clause, m.title);
            }
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Eval {
            measure,
            date: d,
            facts,
        } => {
            let on = date(&d)?;
            let text = if facts.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&facts)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", facts.display()))?
            };
            let facts: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("the facts are not JSON: {e}"))?;
            match catalogue.evaluate(&measure, on, &facts) {
                Ok(evaluation) => {
                    println!(
                        "{} under policy {}: {}, award {}",
                        evaluation.measure,
                        evaluation.policy_version,
                        if evaluation.eligible {
                            "eligible"
                        } else {
                            "not eligible"
                        },
                        evaluation.award
                    );
                    for step in &evaluation.trace {
                        println!("  [{}] {}: {}", step.clause, step.step, step.value);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ (EvalError::UnknownMeasure(_) | EvalError::NotInForce { .. })) => {
                    println!("{e}");
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => {
                    println!("invalid facts: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
