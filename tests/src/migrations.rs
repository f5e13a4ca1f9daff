//! Migration discipline: landed migrations are never edited, a server refuses a database whose
//! applied migrations differ, `redeem_voucher` is the one its latest migration defines, and the
//! one floor-to-the-fen of SQL agrees with Rust's.

use rust_decimal::Decimal;
use sqlx::PgPool;
use voucher_core::db::{check_schema, MIGRATOR};
use voucher_core::{Money, Rate};

/// The committed list: `NNNN <sha384 hex> <file>` per landed migration.
const CHECKSUMS: &str = include_str!("../../migrations/checksums.txt");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_migration_matches_its_committed_checksum() {
    let listed: Vec<(i64, &str)> = CHECKSUMS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            let version = parts.next().unwrap().parse().unwrap();
            (version, parts.next().unwrap())
        })
        .collect();
    let migrations: Vec<_> = MIGRATOR.iter().collect();
    for m in &migrations {
        let Some((_, sum)) = listed.iter().find(|(v, _)| *v == m.version) else {
            panic!(
                "migration {:04} ({}) is not in migrations/checksums.txt: add its line when it lands",
                m.version, m.description
            );
        };
        assert_eq!(
            *sum,
            hex(&m.checksum),
            "migration {:04} ({}) differs from the checksum committed when it landed: landed \
             migrations are never edited, add a new one instead",
            m.version,
            m.description
        );
    }
    for (version, _) in &listed {
        assert!(
            migrations.iter().any(|m| m.version == *version),
            "migrations/checksums.txt lists {version:04}, which is not a migration"
        );
    }
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_database_whose_applied_migration_differs_is_refused_with_one_line(pool: PgPool) {
    check_schema(&pool)
        .await
        .expect("a freshly migrated database is served");
    // What an edit of 0003 after it was applied looks like from the server's side.
    sqlx::query(
        "update _sqlx_migrations set checksum = sha384('an older 0003'::bytea) where version = 3",
    )
    .execute(&pool)
    .await
    .unwrap();
    let refusal = check_schema(&pool).await.unwrap_err().to_string();
    assert!(!refusal.contains('\n'), "one line: {refusal}");
    assert!(
        refusal.contains("migration 0003 (redeemer)") && refusal.contains("checksum mismatch"),
        "{refusal}"
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn redeem_voucher_is_the_body_of_the_latest_migration_that_replaces_it(pool: PgPool) {
    let latest = MIGRATOR
        .iter()
        .rfind(|m| m.sql.contains("function redeem_voucher("))
        .expect("a migration defines redeem_voucher");
    assert!(
        latest.version > 3,
        "redeem_voucher changed after 0003 landed, so a later migration replaces it"
    );
    let source: String =
        sqlx::query_scalar("select prosrc from pg_proc where proname = 'redeem_voucher'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let start = latest.sql.find("function redeem_voucher(").unwrap();
    let body = latest.sql[start..].split("$$").nth(1).unwrap();
    assert_eq!(
        source, body,
        "the database runs the body of migration {:04}",
        latest.version
    );
    assert!(source.contains("floor_fen(p_bill * v.rate)"));
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn rust_and_sql_floor_to_the_fen_agree_on_the_same_inputs(pool: PgPool) {
    // Amounts around every fen boundary and at the ends of numeric(14,2), times the rates a
    // program can have; plus a pseudo-random spread.
    let mut amounts: Vec<String> = [
        "0.01",
        "0.03",
        "0.04",
        "0.33",
        "1.00",
        "9.99",
        "33.33",
        "100.01",
        "166666.67",
        "166666.66",
        "23456.78",
        "50000.00",
        "99999.99",
        "999999999999.99",
        "123456789012.34",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut x: u64 = 0x5EED;
    for _ in 0..400 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let fen = (x >> 20) % 100_000_000_000_000;
        amounts.push(format!("{}.{:02}", fen / 100, fen % 100));
    }
    let rates = [
        "0.30", "0.3", "0.2999", "0.0001", "0.5", "1", "0.3333", "0.0707",
    ];
    let mut bills = Vec::new();
    let mut rate_values = Vec::new();
    let mut rust = Vec::new();
    for a in &amounts {
        for r in rates {
            let money = Money::parse(a).unwrap();
            let rate = Rate::new(r.parse().unwrap()).unwrap();
            bills.push(money.as_decimal());
            rate_values.push(rate.as_decimal());
            rust.push(money.times_rate_floor_fen(rate).unwrap().as_decimal());
        }
    }
    let sql: Vec<Decimal> = sqlx::query_scalar(
        "select floor_fen(b * r) from unnest($1::numeric[], $2::numeric[]) with ordinality as t(b, r, n) order by n",
    )
    .bind(&bills)
    .bind(&rate_values)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(sql.len(), rust.len());
    for i in 0..rust.len() {
        assert_eq!(
            sql[i], rust[i],
            "floor_fen({} × {}): SQL {} but Rust {}",
            bills[i], rate_values[i], sql[i], rust[i]
        );
    }
    // No silent fallback on either side: past numeric(14,2) both refuse.
    let overflow = sqlx::query_scalar::<_, Decimal>("select floor_fen(1000000000000.00)")
        .fetch_one(&pool)
        .await;
    assert!(
        overflow.is_err(),
        "SQL floor_fen refuses what numeric(14,2) cannot hold"
    );
    assert!(Money::from_decimal(voucher_core::money::floor_fen(
        "1000000000000.00".parse().unwrap()
    ))
    .is_err());
}
