//! The opening morning and the abuse runs (`ops/bench-storm`, `ops/bench-abuse`): every firm is
//! registered through the API, then logs in and claims over loopback HTTP as the portal does,
//! retrying on 429/503 after `Retry-After`. Each firm sends its own `X-Forwarded-For` address
//! from 198.18.0.0/15 (the benchmarking range), as behind a real balancer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use voucher_core::Uscc;

/// The password every benchmark firm registers with (strong enough for the policy).
pub const PASSWORD: &str = "storm-ridge-lantern-42";

/// One keep-alive connection that reopens itself when it has been idle long enough for the
/// server's header-read timeout to close it.
pub struct Conn {
    addr: String,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    last_used: Instant,
    /// Connections opened again after the server closed one.
    pub reconnects: u64,
}

/// A response read whole.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Bytes,
}

impl Conn {
    pub fn new(addr: &str) -> Conn {
        Conn {
            addr: addr.to_owned(),
            sender: None,
            last_used: Instant::now(),
            reconnects: 0,
        }
    }

    async fn open(&mut self) -> anyhow::Result<()> {
        let stream = tokio::net::TcpStream::connect(&self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends a JSON request; a connection the server closed while idle is reopened first.
    pub async fn json(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        forwarded_for: &str,
        body: &Value,
    ) -> anyhow::Result<Answer> {
        let stale = self.last_used.elapsed() > Duration::from_secs(5)
            || self.sender.as_ref().is_none_or(|s| s.is_closed());
        if stale {
            if self.sender.is_some() {
                self.reconnects += 1;
            }
            self.open().await?;
        }
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.addr)
            .header("content-type", "application/json")
            .header("x-forwarded-for", forwarded_for);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::from(body.to_string())))?;
        let sender = self.sender.as_mut().expect("opened above");
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = response.into_body().collect().await?.to_bytes();
        self.last_used = Instant::now();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

/// The benchmarking-range address of firm `i` (198.18.0.0/15).
pub fn address(i: u32) -> String {
    format!(
        "198.{}.{}.{}",
        18 + (i >> 16) % 2,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

/// A valid USCC for benchmark firm `i`.
pub fn uscc(i: u32) -> anyhow::Result<String> {
    Uscc::with_check_digits("91440306", &format!("MK{i:06}"))
        .map(|u| u.to_string())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Tallies of every answer, and the waits a client was told to make.
#[derive(Default)]
pub struct Tally {
    pub statuses: BTreeMap<String, u64>,
    pub transport_errors: u64,
    pub reconnects: u64,
    /// Requests still refused (429/503) after [`GIVE_UP`] of retrying.
    pub gave_up: u64,
}

/// How long a client keeps retrying one request before it gives up (the portal's budget).
pub const GIVE_UP: Duration = Duration::from_secs(180);

impl Tally {
    fn count(&mut self, what: &str, answer: &Answer) {
        let code = (answer.status >= 400)
            .then(|| serde_json::from_slice::<Value>(&answer.body).ok())
            .flatten()
            .and_then(|v| v["code"].as_str().map(str::to_owned));
        let key = match code {
            Some(code) => format!("{what} {} {code}", answer.status),
            None => format!("{what} {}", answer.status),
        };
        *self.statuses.entry(key).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        self.transport_errors += other.transport_errors;
        self.reconnects += other.reconnects;
        self.gave_up += other.gave_up;
    }
}

/// Sends until the answer is neither 429 nor 503, sleeping `Retry-After` between tries, as
/// the portal does. `None` after a transport error.
#[expect(clippy::too_many_arguments, reason = "one request's parts, named")]
pub async fn until_answered(
    conn: &mut Conn,
    tally: &mut Tally,
    what: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    forwarded_for: &str,
    body: &Value,
) -> Option<Answer> {
    let started = Instant::now();
    loop {
        match conn.json(method, path, token, forwarded_for, body).await {
            Ok(answer) => {
                tally.count(what, &answer);
                if (answer.status == 429 || answer.status == 503) && started.elapsed() > GIVE_UP {
                    tally.gave_up += 1;
                    return None;
                }
                if answer.status == 429 || answer.status == 503 {
                    let wait = answer.retry_after.unwrap_or(1).clamp(1, 60);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    continue;
                }
                return Some(answer);
            }
            Err(e) => {
                tally.transport_errors += 1;
                if tally.transport_errors <= 3 {
                    eprintln!("transport error on {what}: {e:#}");
                }
                conn.sender = None;
                return None;
            }
        }
    }
}

/// Registers firms `0..firms` through the API over `clients` connections (not timed).
pub async fn register(addr: &str, firms: u32, clients: usize) -> anyhow::Result<Tally> {
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (addr, next) = (addr.to_owned(), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::new(&addr);
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= firms {
                    break;
                }
                if let Some(a) = register_with(&mut conn, &mut tally, i).await? {
                    anyhow::ensure!(
                        a.status == 201 || a.status == 409,
                        "registration answered {}: {}",
                        a.status,
                        String::from_utf8_lossy(&a.body)
                    );
                }
            }
            tally.reconnects = conn.reconnects;
            anyhow::Ok(tally)
        }));
    }
    let mut tally = Tally::default();
    for w in workers {
        tally.merge(w.await??);
    }
    Ok(tally)
}

/// Marks every firm the storm registered `verified` (DATABASE_URL), as the reviewer would have
/// once each had uploaded its licence: only verified firms can claim, and the morning measured
/// is the claims, not the review (not timed). It verifies without evidence, so it refuses any
/// database but the scratch one the bench scripts create (`voucher_bench_*`).
pub async fn verify_registered() -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
    let name: String = sqlx::query_scalar("select current_database()::text")
        .fetch_one(&pool)
        .await?;
    anyhow::ensure!(
        name.starts_with("voucher_bench"),
        "refusing to verify firms without evidence in database {name}: only a voucher_bench_* scratch database"
    );
    sqlx::query(
        r#"update firms set verification = 'verified', reviewed_by = 'bench', reviewed_at = now()
           where verification = 'pending' and name like '开业测试制造%'"#,
    )
    .execute(&pool)
    .await?;
    // On the real morning the reviews are days old: the rows they rewrote have long been
    // vacuumed. Here they were rewritten a moment ago, so vacuum them now, outside the timing,
    // rather than have every login read past 2,100 dead row versions while autovacuum runs.
    sqlx::query("vacuum (analyze) firms").execute(&pool).await?;
    pool.close().await;
    Ok(())
}

/// Registers firm `i` on `conn`, retrying as the portal does; the final answer.
async fn register_with(
    conn: &mut Conn,
    tally: &mut Tally,
    i: u32,
) -> anyhow::Result<Option<Answer>> {
    let body = json!({"uscc": uscc(i)?, "name": format!("开业测试制造{i}号有限公司"),
        "industry_code": "C3911", "district": "宝安区", "contact_name": "王五",
        "contact_phone": "13800000000", "password": PASSWORD});
    let path = "/api/portal/firms";
    Ok(until_answered(
        conn,
        tally,
        "register",
        "POST",
        path,
        None,
        &address(i),
        &body,
    )
    .await)
}

/// Registers firm `i` alone; its final status.
pub async fn register_one(addr: &str, i: u32) -> anyhow::Result<u16> {
    let mut conn = Conn::new(addr);
    let mut tally = Tally::default();
    register_with(&mut conn, &mut tally, i)
        .await?
        .map(|a| a.status)
        .ok_or_else(|| anyhow::anyhow!("registration failed in transport"))
}

/// One firm's morning: log in, then claim. The final claim answer's status, or `None`.
pub async fn morning(
    conn: &mut Conn,
    tally: &mut Tally,
    i: u32,
    platform: &str,
) -> anyhow::Result<Option<u16>> {
    let xff = address(i);
    let login = json!({"uscc": uscc(i)?, "password": PASSWORD});
    let Some(answer) = until_answered(
        conn,
        tally,
        "login",
        "POST",
        "/api/portal/sessions",
        None,
        &xff,
        &login,
    )
    .await
    else {
        return Ok(None);
    };
    if answer.status != 200 {
        return Ok(Some(answer.status));
    }
    let token: Value = serde_json::from_slice(&answer.body)?;
    let token = token["token"].as_str().unwrap_or_default().to_owned();
    let claim = json!({"platform_id": platform, "annual_fee": "10000.00"});
    let answer = until_answered(
        conn,
        tally,
        "claim",
        "POST",
        "/api/portal/vouchers",
        Some(&token),
        &xff,
        &claim,
    )
    .await;
    Ok(answer.map(|a| a.status))
}

/// Milliseconds at the given fraction of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64) * p) as usize)
        .or(sorted.last())
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// One argon2id verification with the server's parameters, timed here (median of 9).
pub fn argon2_seconds() -> f64 {
    use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
    let argon = argon2::Argon2::default();
    let salt = SaltString::encode_b64(b"bench-salt-16byt").expect("salt");
    let hash = argon
        .hash_password(PASSWORD.as_bytes(), &salt)
        .expect("hash")
        .to_string();
    let parsed = PasswordHash::new(&hash).expect("parse");
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            let t = Instant::now();
            let _ = argon.verify_password(PASSWORD.as_bytes(), &parsed);
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[4]
}
