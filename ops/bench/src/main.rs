//! `voucher-bench`: what `ops/bench-redeem` drives. `load` puts N signed vouchers straight into
//! the database (as claims would have left them, journal included); `drive` fires redemptions
//! over loopback HTTP, closed-loop with C connections, or open-loop at a fixed rate, and prints
//! one JSON line of figures.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod failover;
mod storm;

use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use uuid::Uuid;
use voucher_core::keys::KeyRing;
use voucher_core::platform::generate_key;
use voucher_core::token::{self, VoucherClaims};
use voucher_core::Uscc;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a platform with a key and N vouchers of 50,000.00 for it (DATABASE_URL,
    /// VOUCHER_KEY_DIR); prints the API key, writes the tokens to --out.
    Load {
        #[arg(long)]
        vouchers: u32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Register --firms eligible firms straight into the database, then have them all claim at
    /// once over --clients connections; prints a JSON line (DATABASE_URL, REDIS_URL,
    /// VOUCHER_KEY_DIR of the running server).
    Claims {
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: String,
        #[arg(long)]
        firms: u32,
        #[arg(long)]
        clients: usize,
    },
    /// Register --firms firms through the API (not timed), then have every one log in and
    /// claim at once over --clients connections, retrying on 429/503 after Retry-After;
    /// prints a JSON line (DATABASE_URL for the platform id and the admitted count).
    Storm {
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: String,
        #[arg(long)]
        firms: u32,
        #[arg(long)]
        clients: usize,
    },
    /// --attackers connections sending failed logins for --seconds, then --idle connections
    /// held open without a request for --seconds, each while one firm logs in and claims
    /// again and again; prints a JSON line per phase.
    Abuse {
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: String,
        #[arg(long, default_value_t = 1000)]
        attackers: usize,
        #[arg(long, default_value_t = 5000)]
        idle: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// The server's pid, to read its peak RSS after each phase.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Redemptions (and some claims and reversals) through the balancer for --seconds, each
    /// retried until a definite answer; every acknowledgement to --acked, figures as a JSON line
    /// (`ops/failover-test`; DATABASE_URL, REDIS_URL, VOUCHER_KEY_DIR for the claims' firms).
    Failover {
        #[arg(long, default_value = "127.0.0.1:8480")]
        addr: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        tokens: PathBuf,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long)]
        seconds: u64,
        /// Firms that claim a voucher during the run.
        #[arg(long, default_value_t = 200)]
        claims: u32,
        /// Tag for the idempotency keys and invoice numbers, unique per run.
        #[arg(long)]
        tag: String,
        #[arg(long)]
        acked: PathBuf,
    },
    /// Checks the acknowledgements `failover` wrote against the database (DATABASE_URL); prints
    /// a JSON line with `violations` and `lost`.
    FailoverCheck {
        #[arg(long)]
        acked: PathBuf,
    },
    /// Registers and logs in --firms firms, then reads `GET /api/portal/me` with their sessions
    /// over --clients connections for --seconds; prints a JSON line (what checking each
    /// session against its row costs the portal).
    Portal {
        #[arg(long, default_value = "127.0.0.1:8091")]
        addr: String,
        #[arg(long, default_value_t = 50)]
        firms: u32,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Redeem for --seconds with --clients connections; prints a JSON line.
    Drive {
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        tokens: PathBuf,
        #[arg(long)]
        clients: usize,
        #[arg(long)]
        seconds: u64,
        /// Open loop: this many requests per second in total (latency from the scheduled time).
        #[arg(long)]
        rate: Option<u64>,
        /// Use only the first voucher (one hot row).
        #[arg(long)]
        hot: bool,
        /// Tag for the invoice numbers, unique per run.
        #[arg(long)]
        tag: String,
        /// Each bill's amount (a hot voucher needs small bills to last the run).
        #[arg(long, default_value = "10.00")]
        bill: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Load { vouchers, out } => load(vouchers, out).await,
        Command::Claims {
            addr,
            firms,
            clients,
        } => claims(addr, firms, clients).await,
        Command::Storm {
            addr,
            firms,
            clients,
        } => storm_run(addr, firms, clients).await,
        Command::Abuse {
            addr,
            attackers,
            idle,
            seconds,
            pid,
        } => abuse_run(addr, attackers, idle, seconds, pid).await,
        Command::Failover {
            addr,
            key,
            tokens,
            clients,
            seconds,
            claims,
            tag,
            acked,
        } => failover::run(addr, key, tokens, clients, seconds, claims, tag, acked).await,
        Command::FailoverCheck { acked } => failover::check(&acked).await,
        Command::Portal {
            addr,
            firms,
            clients,
            seconds,
        } => portal_run(addr, firms, clients, seconds).await,
        Command::Drive {
            addr,
            key,
            tokens,
            clients,
            seconds,
            rate,
            hot,
            tag,
            bill,
        } => drive(addr, key, tokens, clients, seconds, rate, hot, tag, bill).await,
    }
}

async fn load(n: u32, out: PathBuf) -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
    let ring = KeyRing::open(&PathBuf::from(std::env::var("VOUCHER_KEY_DIR")?))?;
    let keys = ring.get();
    let year: i32 = sqlx::query_scalar("select max(year) from program_years")
        .fetch_one(&pool)
        .await?;
    let deadline: time::OffsetDateTime =
        sqlx::query_scalar("select redeem_deadline from program_years where year = $1")
            .bind(year)
            .fetch_one(&pool)
            .await?;
    let platform = Uuid::now_v7();
    let platform_uscc =
        Uscc::with_check_digits("91440300", "MA5BENCH").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = pool.begin().await?;
    sqlx::query("insert into platforms (id, name, uscc) values ($1, 'bench platform', $2)")
        .bind(platform)
        .bind(platform_uscc.as_str())
        .execute(&mut *tx)
        .await?;
    let key = generate_key()?;
    sqlx::query("insert into api_keys (id, platform_id, display, hash) values ($1, $2, $3, $4)")
        .bind(Uuid::now_v7())
        .bind(platform)
        .bind(&key.display)
        .bind(&key.hash)
        .execute(&mut *tx)
        .await?;
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0)?;
    let (mut firm_ids, mut usccs, mut voucher_ids, mut codes, mut tokens, mut kids) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for i in 0..n {
        let firm = Uuid::now_v7();
        let uscc = Uscc::with_check_digits("91440306", &format!("MB{i:06}"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let id = Uuid::now_v7();
        let code = bench_code(year, i);
        let claims = VoucherClaims {
            iss: token::ISSUER.into(),
            jti: id,
            sub: uscc.to_string(),
            firm,
            platform,
            year,
            face_value: "50000.00".into(),
            code: code.clone(),
            iat: now.unix_timestamp(),
            exp: deadline.unix_timestamp(),
        };
        let (jws, kid) = token::sign(&keys, &claims)?;
        firm_ids.push(firm);
        usccs.push(uscc.to_string());
        voucher_ids.push(id);
        codes.push(code);
        tokens.push(jws);
        kids.push(kid);
    }
    sqlx::query(
        r#"insert into firms (id, uscc, name, industry_code, district, contact_name, contact_phone, password_hash,
                              eligible, verification, reviewed_by, reviewed_at)
           select id, uscc, 'bench firm', 'C3911', '宝安区', 'bench', '13800000000', 'x', true,
                  'verified', 'bench', now()
           from unnest($1::uuid[], $2::text[]) as t(id, uscc)"#,
    )
    .bind(&firm_ids)
    .bind(&usccs)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        r#"insert into firm_years (firm_id, year, admitted, cap, granted)
           select id, $2, true, 50000, 50000 from unnest($1::uuid[]) as t(id)"#,
    )
    .bind(&firm_ids)
    .bind(year)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        r#"insert into vouchers (id, code, year, firm_id, platform_id, annual_fee, face_value, kid, token,
                                 issued_at, lapses_at, expires_at)
           select v, c, $5, f, $6, 166666.67, 50000, k, t, $7, $8, $8
           from unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $9::text[]) as x(v, c, f, t, k)"#,
    )
    .bind(&voucher_ids)
    .bind(&codes)
    .bind(&firm_ids)
    .bind(&tokens)
    .bind(year)
    .bind(platform)
    .bind(now)
    .bind(deadline)
    .bind(&kids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        r#"insert into journal (kind, debit, credit, amount, year, voucher_id)
           select 'issue', 'voucher:' || v, 'budget:' || $2, 50000, $2, v from unnest($1::uuid[]) as x(v)"#,
    )
    .bind(&voucher_ids)
    .bind(year)
    .execute(&mut *tx)
    .await?;
    sqlx::query("update program_years set firm_quota = greatest(firm_quota, $2), firms_admitted = firms_admitted + $2 where year = $1")
        .bind(year)
        .bind(i32::try_from(n)?)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    std::fs::write(&out, tokens.join("\n"))?;
    println!("{}", key.secret);
    Ok(())
}

/// Inserts `count` eligible, verified firms (as if a reviewer had approved each) named `name`
/// straight into the database (USCCs
/// `91440306` + `prefix` + a six-digit number from `first`), and signs each a session as a row
/// with the running server's key directory (DATABASE_URL, REDIS_URL, VOUCHER_KEY_DIR): the
/// sessions, in firm order.
pub(crate) async fn firms_with_sessions(
    pool: &sqlx::PgPool,
    name: &str,
    prefix: &str,
    first: i64,
    count: u32,
) -> anyhow::Result<Vec<String>> {
    let state = voucher_core::AppState::new(
        pool.clone(),
        voucher_core::cache::Redis::new(&std::env::var("REDIS_URL")?)?,
        &PathBuf::from(std::env::var("VOUCHER_KEY_DIR")?),
    )?;
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    let usccs: Vec<String> = (0..count)
        .map(|i| {
            Uscc::with_check_digits("91440306", &format!("{prefix}{:06}", first + i64::from(i)))
                .map(|u| u.to_string())
                .map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect::<Result<_, _>>()?;
    sqlx::query(
        r#"insert into firms (id, uscc, name, industry_code, district, contact_name, contact_phone, password_hash,
                              eligible, verification, reviewed_by, reviewed_at)
           select id, uscc, $3, 'C3911', '宝安区', 'bench', '13800000000', 'x', true,
                  'verified', 'bench', now()
           from unnest($1::uuid[], $2::text[]) as t(id, uscc)"#,
    )
    .bind(&ids)
    .bind(&usccs)
    .bind(name)
    .execute(pool)
    .await?;
    let mut sessions = Vec::with_capacity(ids.len());
    for id in &ids {
        let session = voucher_core::auth::firm_session(&state, *id)
            .await
            .map_err(|e| anyhow::anyhow!("bench session: {e}"))?;
        sessions.push(session.token);
    }
    Ok(sessions)
}

async fn claims(addr: String, firms: u32, clients: usize) -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
    let platform: Uuid = sqlx::query_scalar("select id from platforms order by created_at limit 1")
        .fetch_one(&pool)
        .await?;
    let sessions = firms_with_sessions(&pool, "claims bench firm", "MC", 0, firms).await?;
    let queue = Arc::new(tokio::sync::Mutex::new(sessions));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (addr, queue) = (addr.clone(), Arc::clone(&queue));
        workers.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
            loop {
                let Some(token) = queue.lock().await.pop() else {
                    break;
                };
                let body = serde_json::json!({"platform_id": platform, "annual_fee": "10000.00"})
                    .to_string();
                let request = hyper::Request::post("/api/portal/vouchers")
                    .header("host", &addr)
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))?;
                let response = sender.send_request(request).await?;
                let status = response.status().as_u16();
                let _ = response.into_body().collect().await?;
                *statuses.entry(status).or_default() += 1;
            }
            anyhow::Ok(statuses)
        }));
    }
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    for w in workers {
        for (k, v) in w.await?? {
            *statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let admitted: i32 =
        sqlx::query_scalar("select firms_admitted from program_years order by year desc limit 1")
            .fetch_one(&pool)
            .await?;
    println!(
        "{}",
        serde_json::json!({"firms": firms, "clients": clients, "seconds": elapsed,
                           "statuses": statuses, "firms_admitted": admitted})
    );
    Ok(())
}

async fn first_platform() -> anyhow::Result<Uuid> {
    let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
    Ok(
        sqlx::query_scalar("select id from platforms where active order by created_at limit 1")
            .fetch_one(&pool)
            .await?,
    )
}

async fn storm_run(addr: String, firms: u32, clients: usize) -> anyhow::Result<()> {
    let platform = first_platform().await?.to_string();
    let registered_at = Instant::now();
    let registration = storm::register(&addr, firms, clients.min(64)).await?;
    storm::verify_registered().await?;
    let registration_seconds = registered_at.elapsed().as_secs_f64();
    let argon2 = storm::argon2_seconds();
    let queue = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (addr, queue, platform) = (addr.clone(), Arc::clone(&queue), platform.clone());
        workers.push(tokio::spawn(async move {
            let mut conn = storm::Conn::new(&addr);
            let mut tally = storm::Tally::default();
            let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
            let mut latencies = Vec::new();
            loop {
                let i = queue.fetch_add(1, Ordering::Relaxed);
                if i >= firms {
                    break;
                }
                let began = Instant::now();
                let outcome = storm::morning(&mut conn, &mut tally, i, &platform).await?;
                latencies.push(began.elapsed());
                let key = outcome.map_or("transport error".to_owned(), |s| s.to_string());
                *outcomes.entry(key).or_default() += 1;
            }
            tally.reconnects = conn.reconnects;
            anyhow::Ok((tally, outcomes, latencies))
        }));
    }
    let mut tally = storm::Tally::default();
    let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
    let mut latencies = Vec::new();
    for w in workers {
        let (t, o, l) = w.await??;
        for (k, v) in t.statuses {
            *tally.statuses.entry(k).or_default() += v;
        }
        tally.transport_errors += t.transport_errors;
        tally.reconnects += t.reconnects;
        tally.gave_up += t.gave_up;
        for (k, v) in o {
            *outcomes.entry(k).or_default() += v;
        }
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
    let admitted: i32 =
        sqlx::query_scalar("select firms_admitted from program_years order by year desc limit 1")
            .fetch_one(&pool)
            .await?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "{}",
        serde_json::json!({
            "firms": firms, "clients": clients, "admitted": admitted,
            "final_claim_answers": outcomes, "answers": tally.statuses,
            "transport_errors": tally.transport_errors + registration.transport_errors,
            "reconnects": tally.reconnects, "gave_up": tally.gave_up, "seconds": elapsed,
            "p50_ms": storm::percentile(&latencies, 0.50), "p99_ms": storm::percentile(&latencies, 0.99),
            "argon2_ms": argon2 * 1000.0, "cores": cores,
            "ideal_seconds": f64::from(firms) * argon2 / cores as f64,
            "registration_seconds": registration_seconds, "registration_answers": registration.statuses,
        })
    );
    Ok(())
}

async fn portal_run(addr: String, firms: u32, clients: usize, seconds: u64) -> anyhow::Result<()> {
    storm::register(&addr, firms, clients.clamp(1, 16)).await?;
    let mut conn = storm::Conn::new(&addr);
    let mut tokens = Vec::with_capacity(firms as usize);
    for i in 0..firms {
        let body = serde_json::json!({"uscc": storm::uscc(i)?, "password": storm::PASSWORD});
        let answer = conn
            .json(
                "POST",
                "/api/portal/sessions",
                None,
                &storm::address(i),
                &body,
            )
            .await?;
        anyhow::ensure!(answer.status == 200, "login answered {}", answer.status);
        let session: serde_json::Value = serde_json::from_slice(&answer.body)?;
        tokens.push(
            session["token"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("no token"))?
                .to_owned(),
        );
    }
    let tokens = Arc::new(tokens);
    let started = Instant::now();
    let deadline = started + std::time::Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for w in 0..clients {
        let (addr, tokens) = (addr.clone(), Arc::clone(&tokens));
        workers.push(tokio::spawn(async move {
            let mut conn = storm::Conn::new(&addr);
            let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
            let mut latencies = Vec::new();
            let mut n = w;
            while Instant::now() < deadline {
                let token = &tokens[n % tokens.len()];
                n += clients;
                let began = Instant::now();
                let answer = conn
                    .json(
                        "GET",
                        "/api/portal/me",
                        Some(token),
                        "127.0.0.1",
                        &serde_json::Value::Null,
                    )
                    .await?;
                latencies.push(began.elapsed());
                *statuses.entry(answer.status).or_default() += 1;
            }
            anyhow::Ok((statuses, latencies))
        }));
    }
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    let mut latencies = Vec::new();
    for w in workers {
        let (s, l) = w.await??;
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "{}",
        serde_json::json!({
            "firms": firms, "clients": clients, "seconds": elapsed,
            "requests": latencies.len(), "per_second": latencies.len() as f64 / elapsed,
            "answers": statuses,
            "p50_ms": storm::percentile(&latencies, 0.50),
            "p99_ms": storm::percentile(&latencies, 0.99),
        })
    );
    Ok(())
}

/// The peak RSS of process `pid` so far, in MiB (VmHWM).
fn peak_rss_mib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

async fn abuse_run(
    addr: String,
    attackers: usize,
    idle: usize,
    seconds: u64,
    pid: Option<u32>,
) -> anyhow::Result<()> {
    let platform = first_platform().await?.to_string();
    let normal: u32 = 0x1_fff0;
    let reg = storm::register_one(&addr, normal).await?;
    anyhow::ensure!(
        reg == 201 || reg == 409,
        "the normal firm's registration answered {reg}"
    );
    // Only a verified firm claims: the reviewer has approved it (not part of what is measured).
    storm::verify_registered().await?;
    // Phase 1: failed logins from ever-new addresses, sent as fast as answers come back.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for a in 0..attackers {
        let (addr, stop) = (addr.clone(), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut conn = storm::Conn::new(&addr);
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let i = (a as u32) * 4096 + sent;
                let body = serde_json::json!({"uscc": storm::uscc(500_000 + i % 400_000).unwrap_or_default(),
                    "password": "not-the-password"});
                if conn
                    .json("POST", "/api/portal/sessions", None, &storm::address(i), &body)
                    .await
                    .is_err()
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                sent += 1;
            }
        }));
    }
    let failed_logins = normal_client(&addr, normal, &platform, seconds).await?;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "{}",
        serde_json::json!({"phase": "failed logins", "attackers": attackers, "seconds": seconds, "normal_client": failed_logins, "peak_rss_mib": peak_rss_mib(pid)})
    );
    // Phase 2: connections that never send a request, reopened whenever the server drops one.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..idle {
        let (addr, stop, opened) = (addr.clone(), Arc::clone(&stop), Arc::clone(&opened));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match tokio::net::TcpStream::connect(&addr).await {
                    Ok(mut stream) => {
                        opened.fetch_add(1, Ordering::Relaxed);
                        let mut buf = [0u8; 512];
                        // Held until the server closes it or the phase ends.
                        let _ = tokio::time::timeout(
                            Duration::from_secs(seconds + 1),
                            tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
                        )
                        .await;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_phase = normal_client(&addr, normal, &platform, seconds).await?;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    println!(
        "{}",
        serde_json::json!({"phase": "idle connections", "idle": idle, "connections_opened": opened.load(Ordering::Relaxed), "seconds": seconds, "normal_client": idle_phase, "peak_rss_mib": peak_rss_mib(pid)})
    );
    Ok(())
}

/// One firm logging in and claiming (or reading its standing once it holds its slot) again and
/// again for `seconds`, obeying Retry-After; its cycles and latencies.
async fn normal_client(
    addr: &str,
    i: u32,
    platform: &str,
    seconds: u64,
) -> anyhow::Result<serde_json::Value> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut conn = storm::Conn::new(addr);
    let mut tally = storm::Tally::default();
    let mut latencies = Vec::new();
    let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
    while Instant::now() < until {
        let began = Instant::now();
        let outcome = storm::morning(&mut conn, &mut tally, i, platform).await?;
        latencies.push(began.elapsed());
        *outcomes
            .entry(outcome.map_or("transport error".to_owned(), |s| s.to_string()))
            .or_default() += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    latencies.sort();
    Ok(
        serde_json::json!({"cycles": latencies.len(), "final_answers": outcomes, "answers": tally.statuses,
        "transport_errors": tally.transport_errors, "gave_up": tally.gave_up,
        "p50_ms": storm::percentile(&latencies, 0.5), "max_ms": storm::percentile(&latencies, 1.0)}),
    )
}

#[expect(
    clippy::too_many_arguments,
    reason = "a CLI's flags, passed straight through"
)]
async fn drive(
    addr: String,
    key: String,
    tokens: PathBuf,
    clients: usize,
    seconds: u64,
    rate: Option<u64>,
    hot: bool,
    tag: String,
    bill: String,
) -> anyhow::Result<()> {
    let mut tokens: Vec<String> = std::fs::read_to_string(tokens)?
        .lines()
        .map(str::to_owned)
        .collect();
    if hot {
        tokens.truncate(1);
    }
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    // Open loop: a ticker hands out scheduled send times; latency counts from them, so a slow
    // server cannot hide its queueing (no coordinated omission).
    let (tx, rx) = async_channel(rate, until);
    let mut workers = Vec::new();
    for w in 0..clients {
        let (addr, key, tokens, next, tag, rx, bill) = (
            addr.clone(),
            key.clone(),
            Arc::clone(&tokens),
            Arc::clone(&next),
            tag.clone(),
            rx.clone(),
            bill.clone(),
        );
        workers.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            let (mut ok, mut errors) = (0u64, 0u64);
            let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
            loop {
                let scheduled = match &rx {
                    Some(rx) => match rx.lock().await.recv().await {
                        Some(at) => at,
                        None => break,
                    },
                    None => {
                        if Instant::now() >= until {
                            break;
                        }
                        Instant::now()
                    }
                };
                let n = next.fetch_add(1, Ordering::Relaxed);
                let token = &tokens[(n as usize) % tokens.len()];
                let body = serde_json::json!({
                    "voucher": token, "invoice_no": format!("{tag}-{w}-{n}"), "bill_amount": bill
                })
                .to_string();
                let request = hyper::Request::post("/v1/redemptions")
                    .header("host", &addr)
                    .header("authorization", format!("Bearer {key}"))
                    .header("content-type", "application/json")
                    .header("idempotency-key", format!("{tag}-{w}-{n}"))
                    .body(Full::new(Bytes::from(body)))?;
                let response = sender.send_request(request).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                latencies.push(scheduled.elapsed());
                *statuses.entry(status.as_u16()).or_default() += 1;
                if status != hyper::StatusCode::CREATED && errors == 0 {
                    eprintln!(
                        "first non-201 answer: {status} {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                if status == hyper::StatusCode::CREATED {
                    ok += 1;
                } else {
                    errors += 1;
                }
            }
            anyhow::Ok((latencies, ok, errors, statuses))
        }));
    }
    drop(tx);
    let (mut all, mut ok, mut errors) = (Vec::new(), 0, 0);
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    for w in workers {
        let (l, o, e, s) = w.await??;
        all.extend(l);
        ok += o;
        errors += e;
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64) * p) as usize)
            .or(all.last())
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "requests": all.len(), "ok": ok, "errors": errors,
            "per_second": ok as f64 / elapsed,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "clients": clients, "seconds": seconds, "rate": rate, "hot": hot, "statuses": statuses,
        })
    );
    Ok(())
}

/// A distinct code per voucher, in the code alphabet (no 0/O/1/I/L).
fn bench_code(year: i32, i: u32) -> String {
    const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
    let mut x = i as usize;
    let mut s = String::new();
    for _ in 0..8 {
        s.push(char::from(ALPHABET[x % 31]));
        x /= 31;
    }
    format!("BA{:02}-{}-{}", year.rem_euclid(100), &s[..4], &s[4..])
}

type Ticks = Option<Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Instant>>>>;

fn async_channel(
    rate: Option<u64>,
    until: Instant,
) -> (Option<tokio::task::JoinHandle<()>>, Ticks) {
    let Some(rate) = rate else {
        return (None, None);
    };
    let (tx, rx) = tokio::sync::mpsc::channel(100_000);
    let ticker = tokio::spawn(async move {
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let mut at = Instant::now();
        while at < until {
            tokio::time::sleep_until(at.into()).await;
            if tx.send(at).await.is_err() {
                break;
            }
            at += interval;
        }
    });
    (Some(ticker), Some(Arc::new(tokio::sync::Mutex::new(rx))))
}
