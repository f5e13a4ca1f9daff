//! Double-entry postings (SPEC §2, "Ledger"). Each entry is one balanced transfer of `amount`
//! from the `credit` account to the `debit` account, written in the caller's transaction.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::money::Money;

/// The accounts money moves between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// What the program year still has to give.
    Budget(i32),
    /// What a voucher still holds.
    Voucher(Uuid),
    /// What the bureau owes a platform for redeemed discounts.
    Payable(Uuid),
    /// What the bureau has paid a platform.
    Paid(Uuid),
}

impl Account {
    /// The account's key in the journal (`voucher:<id>`, ...).
    pub fn key(&self) -> String {
        match self {
            Account::Budget(year) => format!("budget:{year}"),
            Account::Voucher(id) => format!("voucher:{id}"),
            Account::Payable(id) => format!("payable:{id}"),
            Account::Paid(id) => format!("paid:{id}"),
        }
    }
}

/// Why money moved; one per movement SPEC §2 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Budget → voucher at claim.
    Issue,
    /// Voucher → platform payable at redemption.
    Redeem,
    /// Payable → voucher when an invoice is voided.
    Reversal,
    /// Voucher → budget when the firm cancels.
    Cancel,
    /// Voucher → budget when unused past its claim validity.
    Lapse,
    /// Voucher → budget past the redeem deadline.
    Expire,
    /// Payable → paid when the bureau pays a statement.
    Payment,
}

impl Kind {
    /// The journal's `kind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Issue => "issue",
            Kind::Redeem => "redeem",
            Kind::Reversal => "reversal",
            Kind::Cancel => "cancel",
            Kind::Lapse => "lapse",
            Kind::Expire => "expire",
            Kind::Payment => "payment",
        }
    }
}

/// One journal entry about to be written.
#[derive(Debug, Clone)]
pub struct Posting {
    /// Why.
    pub kind: Kind,
    /// Where the money arrives.
    pub debit: Account,
    /// Where it leaves.
    pub credit: Account,
    /// How much; never zero (the journal refuses it).
    pub amount: Money,
    /// The program year the money belongs to.
    pub year: i32,
    /// The voucher concerned, if any.
    pub voucher_id: Option<Uuid>,
    /// The redemption concerned, if any.
    pub redemption_id: Option<Uuid>,
    /// The statement concerned, if any.
    pub statement_id: Option<Uuid>,
    /// When the movement happened (the application clock), so the journal and the rows it
    /// mirrors agree on which business day a movement belongs to.
    pub at: time::OffsetDateTime,
}

/// Writes one entry in the caller's transaction.
pub async fn post(conn: &mut PgConnection, posting: &Posting) -> sqlx::Result<()> {
    sqlx::query!(
        r#"insert into journal (kind, debit, credit, amount, year, voucher_id, redemption_id, statement_id, created_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        posting.kind.as_str(),
        posting.debit.key(),
        posting.credit.key(),
        posting.amount.as_decimal(),
        posting.year,
        posting.voucher_id,
        posting.redemption_id,
        posting.statement_id,
        posting.at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A voucher's balance from the journal alone: what arrived minus what left. Reconciliation
/// compares it with the voucher row's `face_value − redeemed`.
pub async fn voucher_balance(
    conn: &mut PgConnection,
    voucher_id: Uuid,
) -> sqlx::Result<rust_decimal::Decimal> {
    let key = Account::Voucher(voucher_id).key();
    let balance = sqlx::query_scalar!(
        r#"select coalesce(sum(case when debit = $2 then amount
                                    when credit = $2 then -amount
                                    else 0 end), 0) as "balance!"
           from journal where voucher_id = $1"#,
        voucher_id,
        key
    )
    .fetch_one(conn)
    .await?;
    Ok(balance)
}
