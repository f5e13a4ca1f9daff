//! `voucherd`: one binary, subcommands for serving, migrating and operating the system.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use voucher_core::config::{self, Environment, ServeConfig};
use voucher_core::{cache::Redis, db, telemetry, AppState};

/// Bao'an District cloud-adoption consumption vouchers (上云上平台消费券).
#[derive(Parser)]
#[command(name = "voucherd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (configured from DATABASE_URL, REDIS_URL, VOUCHER_BIND,
    /// VOUCHER_BOOTSTRAP_ADMIN, VOUCHER_KEY_DIR).
    Serve {
        /// Parts to serve, comma-separated: issuer, redeemer, settlement (default: all).
        #[arg(long, value_delimiter = ',', value_parser = ["issuer", "redeemer", "settlement"])]
        parts: Vec<String>,
    },
    /// Apply the database migrations (DATABASE_URL).
    Migrate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("voucherd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { parts } => serve(parts).await,
            Command::Migrate => migrate().await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voucherd: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn migrate() -> anyhow::Result<()> {
    let options = config::database(&Environment)?;
    let pool = db::connect(options, 2).await?;
    db::MIGRATOR.run(&pool).await?;
    let latest = db::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    println!("migrations applied; schema at version {latest}");
    Ok(())
}

async fn serve(parts: Vec<String>) -> anyhow::Result<()> {
    let config = ServeConfig::load(&Environment)?;
    let parts = if parts.is_empty() {
        voucherd::Parts::ALL
    } else {
        voucherd::Parts {
            issuer: parts.iter().any(|p| p == "issuer"),
            redeemer: parts.iter().any(|p| p == "redeemer"),
            settlement: parts.iter().any(|p| p == "settlement"),
        }
    };
    let pool = db::connect(config.database.clone(), config.db_max_connections).await?;
    db::check_schema(&pool).await?;
    let state = AppState {
        db: pool,
        redis: Redis::new(&config.redis_url)?,
        metrics: telemetry::Metrics::new(),
    };
    let app = voucherd::app_with(state, parts);
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on VOUCHER_BIND={}: {e}", config.bind))?;
    tracing::info!(bind = %config.bind, ?parts, "voucherd serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
