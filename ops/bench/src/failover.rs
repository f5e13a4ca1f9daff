//! `voucher-bench failover` and `failover-check`, what `ops/failover-test` runs: load through the
//! balancer that retries every operation until it has a definite answer (redemptions with the
//! same `Idempotency-Key`), writing down every acknowledged one; then, after the faults, a check
//! of every acknowledgement and of the money against the database.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use uuid::Uuid;

/// How long one attempt may take before the client gives up on it and retries.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// A gap with no acknowledged operation longer than this counts as unavailability.
const GAP: Duration = Duration::from_secs(1);

/// A keep-alive HTTP/1.1 connection, opened again after any error.
struct Client {
    addr: String,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
}

impl Client {
    async fn send(
        &mut self,
        path: &str,
        token: &str,
        idempotency_key: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<Answer> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(&self.addr).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let mut request = hyper::Request::post(path)
            .header("host", &self.addr)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
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
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            retry_after,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// Sends until a definite answer: a transport error, a timeout, a 502/503/504 or an
    /// in-flight idempotency key is tried again (after `Retry-After` when given). Returns the
    /// answer and how many attempts failed first.
    async fn until_definite(
        &mut self,
        path: &str,
        token: &str,
        idempotency_key: Option<&str>,
        body: &Value,
        faults: &mut BTreeMap<String, u64>,
    ) -> Answer {
        loop {
            let wait = match tokio::time::timeout(
                ATTEMPT_TIMEOUT,
                self.send(path, token, idempotency_key, body),
            )
            .await
            {
                Ok(Ok(a)) if matches!(a.status, 502..=504) => {
                    *faults.entry(a.status.to_string()).or_default() += 1;
                    Duration::from_millis(a.retry_after.map_or(500, |s| s.min(2) * 500))
                }
                Ok(Ok(a)) if a.status == 409 && a.body["code"] == "idempotency_in_flight" => {
                    *faults.entry("409 in flight".into()).or_default() += 1;
                    Duration::from_millis(500)
                }
                Ok(Ok(a)) => return a,
                Ok(Err(_)) => {
                    *faults.entry("transport error".into()).or_default() += 1;
                    self.sender = None;
                    Duration::from_millis(200)
                }
                Err(_) => {
                    *faults.entry("timeout".into()).or_default() += 1;
                    self.sender = None;
                    Duration::from_millis(200)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Firms inserted straight into the database, eligible and not yet holding a voucher, with
/// sessions signed with the cluster's shared session secret: the claims of the run.
async fn claim_sessions(pool: &sqlx::PgPool, count: u32) -> anyhow::Result<Vec<String>> {
    // Numbered after the firms earlier runs inserted, so every run's USCCs are new.
    let offset: i64 =
        sqlx::query_scalar("select count(*) from firms where name = 'failover test firm'")
            .fetch_one(pool)
            .await?;
    let sessions =
        crate::firms_with_sessions(pool, "failover test firm", "MF", offset, count).await?;
    sqlx::query("update program_years set firm_quota = firm_quota + $1 where year = (select max(year) from program_years)")
        .bind(i32::try_from(count)?)
        .execute(pool)
        .await?;
    Ok(sessions)
}

/// What one worker acknowledged and met.
#[derive(Default)]
struct Tally {
    ops: u64,
    acked: u64,
    refused: BTreeMap<String, u64>,
    faults: BTreeMap<String, u64>,
}

/// Drives the load for `seconds`; writes every acknowledgement to `acked` (one JSON line each)
/// and prints one JSON line of figures.
#[expect(
    clippy::too_many_arguments,
    reason = "a CLI's flags, passed straight through"
)]
pub async fn run(
    addr: String,
    key: String,
    tokens: PathBuf,
    clients: usize,
    seconds: u64,
    claims: u32,
    tag: String,
    acked: PathBuf,
) -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
    let platform: Uuid = sqlx::query_scalar(
        "select id from platforms where name = 'bench platform' order by created_at desc limit 1",
    )
    .fetch_one(&pool)
    .await?;
    let sessions = Arc::new(Mutex::new(claim_sessions(&pool, claims).await?));
    pool.close().await;
    let tokens: Arc<Vec<String>> = Arc::new(
        std::fs::read_to_string(tokens)?
            .lines()
            .map(str::to_owned)
            .collect(),
    );
    let out = Arc::new(Mutex::new(std::io::BufWriter::new(std::fs::File::create(
        &acked,
    )?)));
    let successes = Arc::new(Mutex::new(Vec::<f64>::new()));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for w in 0..clients {
        let (addr, key, tokens, tag) =
            (addr.clone(), key.clone(), Arc::clone(&tokens), tag.clone());
        let (out, successes, next, sessions) = (
            Arc::clone(&out),
            Arc::clone(&successes),
            Arc::clone(&next),
            Arc::clone(&sessions),
        );
        workers.push(tokio::spawn(async move {
            let mut client = Client { addr, sender: None };
            let mut tally = Tally::default();
            let mut mine: Vec<String> = Vec::new();
            let record = |line: Value| {
                let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                let _ = writeln!(out, "{line}");
                successes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(started.elapsed().as_secs_f64());
            };
            while Instant::now() < until {
                let n = next.fetch_add(1, Ordering::Relaxed);
                tally.ops += 1;
                // One operation in twenty is a reversal of one of this worker's redemptions,
                // one in twenty a claim while firms last; the rest are redemptions.
                if n % 20 == 7 && !mine.is_empty() {
                    let id = mine.swap_remove((n as usize / 20) % mine.len());
                    let a = client
                        .until_definite(
                            &format!("/v1/redemptions/{id}/reversal"),
                            &key,
                            None,
                            &json!({"reason": "failover test"}),
                            &mut tally.faults,
                        )
                        .await;
                    // 409 already_reversed: an earlier attempt went through but its answer
                    // was lost; the reversal is done all the same.
                    if a.status == 200 || a.body["code"] == "already_reversed" {
                        tally.acked += 1;
                        record(json!({"kind": "reverse", "id": id}));
                    } else {
                        *tally
                            .refused
                            .entry(format!("reverse {}", a.status))
                            .or_default() += 1;
                    }
                    continue;
                }
                if n % 20 == 13 {
                    let session = sessions.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    if let Some(session) = session {
                        let a = client
                            .until_definite(
                                "/api/portal/vouchers",
                                &session,
                                None,
                                &json!({"platform_id": platform, "annual_fee": "10000.00"}),
                                &mut tally.faults,
                            )
                            .await;
                        if a.status == 201 {
                            tally.acked += 1;
                            record(json!({"kind": "claim", "voucher_id": a.body["id"]}));
                        } else {
                            *tally
                                .refused
                                .entry(format!("claim {}", a.status))
                                .or_default() += 1;
                        }
                        continue;
                    }
                }
                let idem = format!("{tag}-{w}-{n}");
                let token = &tokens[(n as usize) % tokens.len()];
                let a = client
                    .until_definite(
                        "/v1/redemptions",
                        &key,
                        Some(&idem),
                        &json!({"voucher": token, "invoice_no": idem, "bill_amount": "10.00"}),
                        &mut tally.faults,
                    )
                    .await;
                if a.status == 201 || a.status == 200 {
                    tally.acked += 1;
                    let id = a.body["id"].as_str().unwrap_or_default().to_owned();
                    record(json!({"kind": "redeem", "id": id, "invoice_no": idem,
                                  "discount": a.body["discount"]}));
                    mine.push(id);
                } else {
                    *tally
                        .refused
                        .entry(format!("redeem {} {}", a.status, a.body["code"]))
                        .or_default() += 1;
                }
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for w in workers {
        let t = w.await?;
        total.ops += t.ops;
        total.acked += t.acked;
        for (k, v) in t.refused {
            *total.refused.entry(k).or_default() += v;
        }
        for (k, v) in t.faults {
            *total.faults.entry(k).or_default() += v;
        }
    }
    out.lock().unwrap_or_else(|e| e.into_inner()).flush()?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut times = successes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    times.sort_by(f64::total_cmp);
    // Stretches with no acknowledgement longer than GAP, from the start and to the end too.
    let mut gaps = Vec::new();
    let mut last = 0.0;
    for t in times.iter().copied().chain(std::iter::once(elapsed)) {
        if t - last > GAP.as_secs_f64() {
            gaps.push(json!([round(last), round(t - last)]));
        }
        last = t;
    }
    let unavailable: f64 = gaps.iter().filter_map(|g| g[1].as_f64()).sum();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64()
        - elapsed;
    println!(
        "{}",
        json!({
            "ops": total.ops, "acked": total.acked, "refused": total.refused,
            "client_retries": total.faults, "seconds": round(elapsed),
            "started_unix": started_unix, "gaps": gaps, "unavailable_seconds": round(unavailable),
        })
    );
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Checks every acknowledgement in `acked` and the money against the database; prints one JSON
/// line with `violations` and `lost` and what each counts.
pub async fn check(acked: &Path) -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
    let (mut redeemed, mut reversed, mut claimed, mut invoices) = (
        Vec::<Uuid>::new(),
        Vec::<Uuid>::new(),
        Vec::<Uuid>::new(),
        Vec::<String>::new(),
    );
    for line in std::fs::read_to_string(acked)?.lines() {
        let v: Value = serde_json::from_str(line)?;
        match v["kind"].as_str() {
            Some("redeem") => {
                redeemed.push(v["id"].as_str().unwrap_or_default().parse()?);
                invoices.push(v["invoice_no"].as_str().unwrap_or_default().to_owned());
            }
            Some("reverse") => reversed.push(v["id"].as_str().unwrap_or_default().parse()?),
            Some("claim") => claimed.push(v["voucher_id"].as_str().unwrap_or_default().parse()?),
            _ => anyhow::bail!("unknown line in {}: {line}", acked.display()),
        }
    }
    let scalar = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
    let lost_redemptions = redeemed.len() as i64
        - scalar("select count(*) from redemptions where id = any($1)")
            .bind(&redeemed)
            .fetch_one(&pool)
            .await?;
    let lost_reversals = reversed.len() as i64
        - scalar("select count(*) from redemptions where id = any($1) and status = 'reversed'")
            .bind(&reversed)
            .fetch_one(&pool)
            .await?;
    let lost_claims = claimed.len() as i64
        - scalar("select count(*) from vouchers where id = any($1)")
            .bind(&claimed)
            .fetch_one(&pool)
            .await?;
    // Exactly once: one redemption per acknowledged invoice number, and no redemption of the
    // run's vouchers beyond those acknowledged or retried to a definite answer.
    let duplicated = scalar(
        "select count(*) from (select invoice_no from redemptions where invoice_no = any($1)
                               group by platform_id, invoice_no having count(*) > 1) d",
    )
    .bind(&invoices)
    .fetch_one(&pool)
    .await?;
    let balance_off = scalar(
        "select count(*) from vouchers v
         where v.face_value - v.redeemed <> v.face_value - coalesce(
               (select sum(r.discount) from redemptions r where r.voucher_id = v.id and r.status = 'active'), 0)",
    )
    .fetch_one(&pool)
    .await?;
    let journal_off = scalar(
        "select count(*) from vouchers v
         where v.face_value - v.redeemed - case when v.status in ('cancelled', 'lapsed', 'expired')
                                                then v.face_value - v.redeemed else 0 end
               <> coalesce((select sum(case when j.debit = 'voucher:' || v.id then j.amount
                                            when j.credit = 'voucher:' || v.id then -j.amount else 0 end)
                            from journal j where j.voucher_id = v.id), 0)",
    )
    .fetch_one(&pool)
    .await?;
    let platforms_off = scalar(
        "select count(*) from platforms p
         where coalesce((select sum(case when j.debit in ('payable:' || p.id, 'paid:' || p.id) then j.amount else 0 end)
                              - sum(case when j.credit in ('payable:' || p.id, 'paid:' || p.id) then j.amount else 0 end)
                         from journal j
                         where j.debit in ('payable:' || p.id, 'paid:' || p.id)
                            or j.credit in ('payable:' || p.id, 'paid:' || p.id)), 0)
               <> coalesce((select sum(r.discount) from redemptions r
                            where r.platform_id = p.id and r.status = 'active'), 0)",
    )
    .fetch_one(&pool)
    .await?;
    let violations = duplicated + balance_off + journal_off + platforms_off;
    let lost = lost_redemptions + lost_reversals + lost_claims;
    println!(
        "{}",
        json!({
            "acked_redemptions": redeemed.len(), "acked_reversals": reversed.len(),
            "acked_claims": claimed.len(),
            "lost": lost, "lost_redemptions": lost_redemptions, "lost_reversals": lost_reversals,
            "lost_claims": lost_claims,
            "violations": violations, "duplicated_invoices": duplicated,
            "vouchers_off_balance": balance_off, "vouchers_off_journal": journal_off,
            "platforms_off_journal": platforms_off,
        })
    );
    Ok(())
}
