//! The audit log (SPEC §2, "Audit"): appended in the transaction of the change it records, sealed
//! into a SHA-256 hash chain in batches by one background sealer, verified on demand.
//!
//! Appending is a plain insert, so requests never queue on one row. The sealer takes only
//! entries whose transaction has ended (`xid` below the oldest running transaction), so an
//! entry that commits late is sealed late, never skipped.

use std::time::Duration;

use ring::digest::{Context, SHA256};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

/// Who did it.
#[derive(Debug, Clone)]
pub enum Actor {
    /// A firm, by id.
    Firm(uuid::Uuid),
    /// Bureau staff, by username.
    Staff(String),
    /// A platform, by id.
    Platform(uuid::Uuid),
    /// The system itself (nightly job, bootstrap).
    System,
    /// Someone not yet identified (a failed login), by the name they gave.
    Anonymous(String),
}

impl Actor {
    /// The audit log's `actor` text.
    pub fn label(&self) -> String {
        match self {
            Actor::Firm(id) => format!("firm:{id}"),
            Actor::Staff(name) => format!("staff:{name}"),
            Actor::Platform(id) => format!("platform:{id}"),
            Actor::System => "system".to_owned(),
            Actor::Anonymous(name) => format!("anonymous:{name}"),
        }
    }
}

/// Appends an entry in the caller's transaction.
pub async fn append(
    conn: &mut PgConnection,
    actor: &Actor,
    action: &str,
    subject: Option<&str>,
    detail: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"insert into audit_log (actor, action, subject, detail) values ($1, $2, $3, $4)"#,
        actor.label(),
        action,
        subject,
        detail
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// One entry as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Entry {
    /// Order of appending.
    pub seq: i64,
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `firm:<id>`, `staff:<name>`, `platform:<id>`, `system`, `anonymous:<name>`.
    pub actor: String,
    /// What happened, e.g. `voucher.claim`.
    pub action: String,
    /// What it happened to, e.g. `voucher:<id>`.
    pub subject: Option<String>,
    /// The particulars.
    pub detail: serde_json::Value,
    /// Position in the hash chain, once sealed.
    pub chain_pos: Option<i64>,
}

/// Entries after `after`, oldest first, at most `limit`.
pub async fn list(pool: &PgPool, after: i64, limit: i64) -> sqlx::Result<Vec<Entry>> {
    sqlx::query_as!(
        Entry,
        r#"select a.seq, a.at, a.actor, a.action, a.subject, a.detail, c.pos as "chain_pos?"
           from audit_log a left join audit_chain c on c.seq = a.seq
           where a.seq > $1 order by a.seq limit $2"#,
        after,
        limit
    )
    .fetch_all(pool)
    .await
}

/// The canonical bytes of an entry that its chain hash covers. Every field is length-prefixed
/// so no two different entries can encode alike.
fn canonical(
    pos: i64,
    seq: i64,
    at: OffsetDateTime,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    detail: &str,
) -> Vec<u8> {
    let at = at.unix_timestamp_nanos().to_string();
    let fields: [&str; 7] = [
        &pos.to_string(),
        &seq.to_string(),
        &at,
        actor,
        action,
        subject.unwrap_or("\u{0}"),
        detail,
    ];
    let mut out = Vec::new();
    for field in fields {
        out.extend_from_slice(&(field.len() as u64).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

fn chain_hash(previous: &[u8], canonical: &[u8]) -> Vec<u8> {
    let mut ctx = Context::new(&SHA256);
    ctx.update(previous);
    ctx.update(canonical);
    ctx.finish().as_ref().to_vec()
}

/// The hash before position 1.
const GENESIS: [u8; 32] = [0; 32];

/// Lock key for the one sealer at a time (any replica).
const SEALER_LOCK: i64 = 0x5EA1_A0D1;

/// Seals the entries whose transactions have ended, up to `batch` of them; returns how many.
pub async fn seal_pending(pool: &PgPool, batch: i64) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    let locked = sqlx::query_scalar!(
        r#"select pg_try_advisory_xact_lock($1) as "locked!""#,
        SEALER_LOCK
    )
    .fetch_one(&mut *tx)
    .await?;
    if !locked {
        return Ok(0);
    }
    let tip = sqlx::query!(r#"select pos, hash from audit_chain order by pos desc limit 1"#)
        .fetch_optional(&mut *tx)
        .await?;
    let (mut pos, mut previous) = match tip {
        Some(row) => (row.pos, row.hash),
        None => (0, GENESIS.to_vec()),
    };
    // Every transaction below `horizon` has ended, so all its entries are visible now; all
    // entries below `watermark` are sealed already. Seal those in between, oldest first.
    let state = sqlx::query!(
        r#"select xid_watermark::text as "watermark!",
                  pg_snapshot_xmin(pg_current_snapshot())::text as "horizon!"
           from audit_seal_state for update"#
    )
    .fetch_one(&mut *tx)
    .await?;
    let rows = sqlx::query!(
        r#"select a.seq, a.xid::text as "xid!", a.at, a.actor, a.action, a.subject,
                  a.detail::text as "detail!"
           from audit_log a
           where a.xid >= $1::text::xid8 and a.xid < $2::text::xid8
             and not exists (select 1 from audit_chain c where c.seq = a.seq)
           order by a.xid, a.seq
           limit $3"#,
        state.watermark,
        state.horizon,
        batch
    )
    .fetch_all(&mut *tx)
    .await?;
    // A full batch may have left entries of its last transaction id; resume from that id.
    let next_watermark = match rows.last() {
        Some(last) if rows.len() as i64 == batch => last.xid.clone(),
        _ => state.horizon.clone(),
    };
    let mut positions = Vec::with_capacity(rows.len());
    let mut seqs = Vec::with_capacity(rows.len());
    let mut hashes = Vec::with_capacity(rows.len());
    for row in &rows {
        pos += 1;
        let bytes = canonical(
            pos,
            row.seq,
            row.at,
            &row.actor,
            &row.action,
            row.subject.as_deref(),
            &row.detail,
        );
        previous = chain_hash(&previous, &bytes);
        positions.push(pos);
        seqs.push(row.seq);
        hashes.push(previous.clone());
    }
    if !rows.is_empty() {
        sqlx::query!(
            r#"insert into audit_chain (pos, seq, hash)
               select * from unnest($1::bigint[], $2::bigint[], $3::bytea[])"#,
            &positions,
            &seqs,
            &hashes
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        r#"update audit_seal_state set xid_watermark = $1::text::xid8"#,
        next_watermark
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.len())
}

/// Runs the sealer every second until the process ends.
pub fn spawn_sealer(pool: PgPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            loop {
                match seal_pending(&pool, 5000).await {
                    Ok(5000) => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "audit sealer failed; will retry");
                        break;
                    }
                }
            }
        }
    });
}

/// A break in the chain, naming the entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Finding {
    /// Chain position where the break shows.
    pub pos: i64,
    /// The entry's seq, where there is one.
    pub seq: Option<i64>,
    /// `edited` (content, order or time changed) or `removed`.
    pub problem: String,
    /// What was found.
    pub detail: String,
}

/// The result of checking the whole chain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Verification {
    /// No finding.
    pub ok: bool,
    /// Entries checked (sealed).
    pub entries: i64,
    /// Entries not sealed yet (the sealer runs a few seconds behind).
    pub pending: i64,
    /// Every break found.
    pub findings: Vec<Finding>,
}

/// Walks the chain from the start and names every entry that was edited, removed or
/// reordered since it was sealed.
pub async fn verify(pool: &PgPool) -> sqlx::Result<Verification> {
    let rows = sqlx::query!(
        r#"select c.pos, c.seq, c.hash, a.seq as "entry_seq?", a.at as "at?", a.actor as "actor?",
                  a.action as "action?", a.subject, a.detail::text as "detail?"
           from audit_chain c left join audit_log a on a.seq = c.seq
           order by c.pos"#
    )
    .fetch_all(pool)
    .await?;
    let pending = sqlx::query_scalar!(
        r#"select count(*) as "n!" from audit_log a
           where not exists (select 1 from audit_chain c where c.seq = a.seq)"#
    )
    .fetch_one(pool)
    .await?;
    let mut findings = Vec::new();
    let mut previous = GENESIS.to_vec();
    let mut expected_pos = 1;
    for row in &rows {
        if row.pos != expected_pos {
            findings.push(Finding {
                pos: expected_pos,
                seq: None,
                problem: "removed".into(),
                detail: format!(
                    "chain positions {expected_pos}..{} are missing",
                    row.pos - 1
                ),
            });
        }
        expected_pos = row.pos + 1;
        let (Some(at), Some(actor), Some(action), Some(detail)) = (
            row.at,
            row.actor.as_deref(),
            row.action.as_deref(),
            row.detail.as_deref(),
        ) else {
            findings.push(Finding {
                pos: row.pos,
                seq: Some(row.seq),
                problem: "removed".into(),
                detail: format!(
                    "entry {} was sealed at position {} and is gone",
                    row.seq, row.pos
                ),
            });
            previous = row.hash.clone();
            continue;
        };
        let bytes = canonical(
            row.pos,
            row.seq,
            at,
            actor,
            action,
            row.subject.as_deref(),
            detail,
        );
        let recomputed = chain_hash(&previous, &bytes);
        if recomputed != row.hash {
            findings.push(Finding {
                pos: row.pos,
                seq: Some(row.seq),
                problem: "edited".into(),
                detail: format!(
                    "entry {} differs from what was sealed at position {} (edited or moved)",
                    row.seq, row.pos
                ),
            });
        }
        // Carry on from the stored hash, so one break does not mark every later entry.
        previous = row.hash.clone();
    }
    Ok(Verification {
        ok: findings.is_empty(),
        entries: rows.len() as i64,
        pending,
        findings,
    })
}
