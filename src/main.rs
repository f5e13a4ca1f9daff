//! `voucherd`: one binary, subcommands for serving, migrating and operating the system.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The allocator is glibc's unless built with `--features mimalloc`. glibc's per-thread arenas
/// were what kept gigabytes after a login storm when argon2 ran on up to 512 blocking threads;
/// with hashing on one thread per core reusing its buffer, glibc stayed lower than mimalloc on
/// both the storm (90 against 114 MiB peak) and the abuse run (166 against 207 MiB), so the
/// default stays glibc (`ALLOC=mimalloc ops/bench-storm` and `ops/bench-abuse` measure the other).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use voucher_core::audit::{self, Actor};
use voucher_core::auth::Role;
use voucher_core::config::{self, Environment, ServeConfig};
use voucher_core::keys::KeyRing;
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
    /// Bureau staff accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Voucher signing keys in VOUCHER_KEY_DIR.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Load the demo data set (idempotent): two platforms, three verified firms and one
    /// pending in the reviewer's queue, a reviewer and two finance officers.
    Demo,
    /// The policy measures (rules module).
    Rules {
        #[command(subcommand)]
        command: voucherd::rules_cli::RulesCommand,
    },
    /// Print the OpenAPI document the server serves at /openapi.json (no database needed).
    Openapi,
    /// Run the nightly settlement job for one business date (Asia/Shanghai).
    Settle {
        /// YYYY-MM-DD.
        #[arg(long)]
        date: String,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a staff account with a password read from standard input (first line). This
    /// bypasses activation codes (`POST /api/bureau/staff`): it is for operators at the
    /// server; an admin or finance account still enrols its authenticator at its first login.
    Create {
        /// Username (3-64 of a-z, 0-9, '.', '_', '-').
        username: String,
        /// admin, reviewer or finance.
        #[arg(long, value_parser = ["admin", "reviewer", "finance"])]
        role: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new signing key and make it current; old keys keep verifying their vouchers.
    Rotate,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Seal what is pending, then check the whole hash chain; exits 1 when it is broken.
    Verify,
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
            Command::Admin {
                command: AdminCommand::Create { username, role },
            } => admin_create(&username, &role).await,
            Command::Keys {
                command: KeysCommand::Rotate,
            } => keys_rotate(),
            Command::Audit {
                command: AuditCommand::Verify,
            } => audit_verify().await,
            Command::Demo => demo().await,
            Command::Rules { command } => voucherd::rules_cli::run(command),
            Command::Settle { date } => settle(&date).await,
            Command::Openapi => {
                println!("{:#}", voucherd::openapi_json());
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("voucherd: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn pool() -> anyhow::Result<sqlx::PgPool> {
    let options = config::database(&Environment)?;
    let pool = db::connect(options, 4).await?;
    Ok(pool)
}

async fn migrate() -> anyhow::Result<ExitCode> {
    let pool = pool().await?;
    db::MIGRATOR.run(&pool).await?;
    let latest = db::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    println!("migrations applied; schema at version {latest}");
    Ok(ExitCode::SUCCESS)
}

async fn admin_create(username: &str, role: &str) -> anyhow::Result<ExitCode> {
    let role = Role::parse(role).ok_or_else(|| anyhow::anyhow!("unknown role {role}"))?;
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    let pool = pool().await?;
    db::check_schema(&pool).await?;
    let actor = Actor::System;
    let staff =
        voucher_accounts::staff::create_with_password(&pool, &actor, username, password, role)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "created {} ({}) id {}",
        staff.username,
        role.as_str(),
        staff.id
    );
    Ok(ExitCode::SUCCESS)
}

fn key_dir() -> anyhow::Result<PathBuf> {
    match std::env::var("VOUCHER_KEY_DIR") {
        Ok(v) if !v.trim().is_empty() => Ok(PathBuf::from(v)),
        _ => Err(config::ConfigError::Missing("VOUCHER_KEY_DIR").into()),
    }
}

fn keys_rotate() -> anyhow::Result<ExitCode> {
    let ring = KeyRing::open(&key_dir()?)?;
    let kid = ring.rotate()?;
    println!("new signing key {kid}; running servers pick it up within 30 s");
    Ok(ExitCode::SUCCESS)
}

async fn audit_verify() -> anyhow::Result<ExitCode> {
    let pool = pool().await?;
    while audit::seal_pending(&pool, 5000).await? == 5000 {}
    let report = audit::verify(&pool).await?;
    for finding in &report.findings {
        println!(
            "BROKEN at position {}: entry {} {}: {}",
            finding.pos,
            finding
                .seq
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            finding.problem,
            finding.detail
        );
    }
    println!(
        "{} entries checked, {} pending: {}",
        report.entries,
        report.pending,
        if report.ok {
            "chain intact"
        } else {
            "chain BROKEN"
        }
    );
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn settle(date: &str) -> anyhow::Result<ExitCode> {
    let date = voucher_settlement::parse_business_date(date)
        .map_err(|_| anyhow::anyhow!("--date must be YYYY-MM-DD, got {date:?}"))?;
    let pool = pool().await?;
    db::check_schema(&pool).await?;
    let report = voucher_settlement::run_with_progress(&pool, date).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.invariants.iter().all(|i| i.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn demo() -> anyhow::Result<ExitCode> {
    let pool = pool().await?;
    db::check_schema(&pool).await?;
    let summary = voucherd::demo::load(&pool).await?;
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}

async fn serve(parts: Vec<String>) -> anyhow::Result<ExitCode> {
    let config = ServeConfig::load(&Environment)?;
    // Every connection is a descriptor: raise the soft limit to the hard one (Debian's soft
    // default of 1,024 would stop accepting long before VOUCHER_MAX_CONNECTIONS).
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) if (n as usize) < config.max_connections + 256 => tracing::warn!(
            nofile = n,
            "the open-file limit is below VOUCHER_MAX_CONNECTIONS; connections past it wait in the backlog"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
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
    let mut state = AppState::new(
        pool.clone(),
        Redis::new(&config.redis_url)?,
        &config.key_dir,
    )?;
    state.platform_auth.limits = config.rate_limits;
    state.throttle.anon = config.anon_limits;
    state.trusted_proxies = config.trusted_proxies.clone();
    if let Some(admin) = &config.bootstrap_admin {
        if voucher_accounts::staff::bootstrap_admin(&pool, admin).await? {
            tracing::info!(staff.username = %admin.username, "created the first admin from VOUCHER_BOOTSTRAP_ADMIN");
        }
    }
    voucher_issuer::programs::ensure(&state, state.clock.program_year())
        .await
        .map_err(|e| anyhow::anyhow!("cannot create this year's program: {e}"))?;
    audit::spawn_sealer(pool.clone());
    state.keys.spawn_reloader();
    // Held until shutdown: dropping the scheduler would stop the nightly job.
    let _nightly = if parts.settlement {
        Some(voucher_settlement::spawn_nightly(pool.clone()).await?)
    } else {
        None
    };
    let app = voucherd::app_with(state, parts);
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on VOUCHER_BIND={}: {e}", config.bind))?;
    tracing::info!(bind = %config.bind, ?parts, "voucherd serving");
    let limits = voucher_core::serve::EdgeLimits {
        max_connections: config.max_connections,
        ..Default::default()
    };
    voucher_core::serve::serve(listener, app, limits, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
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
