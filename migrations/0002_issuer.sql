-- Firms, staff, platforms, firm-year totals, vouchers; the journal and the audit log.

-- Platforms (owner: redeemer). Registered by bureau admins; firms claim vouchers for one.
create table platforms (
    id          uuid primary key,
    name        text not null
                constraint platforms_name_len check (char_length(name) between 1 and 200),
    uscc        text not null constraint platforms_uscc_key unique,
    active      boolean not null default true,
    created_at  timestamptz not null default now()
);

-- Firms (owner: issuer). Eligibility is computed at registration from the industry code
-- (GB/T 4754-2017 section C, divisions 13-43) and the registered district (宝安区).
create table firms (
    id             uuid primary key,
    uscc           text not null constraint firms_uscc_key unique,
    name           text not null
                   constraint firms_name_len check (char_length(name) between 1 and 200),
    industry_code  text not null
                   constraint firms_industry_code_form check (industry_code ~ '^[A-T][0-9]{2}([0-9]{1,2})?$'),
    district       text not null
                   constraint firms_district_len check (char_length(district) between 1 and 50),
    contact_name   text not null
                   constraint firms_contact_name_len check (char_length(contact_name) between 1 and 100),
    contact_phone  text not null
                   constraint firms_contact_phone_form check (contact_phone ~ '^[0-9+\- ]{5,20}$'),
    password_hash  text not null,
    eligible       boolean not null,
    created_at     timestamptz not null default now()
);

-- Bureau staff (owner: issuer).
create table staff (
    id             uuid primary key,
    username       text not null constraint staff_username_key unique
                   constraint staff_username_form check (username ~ '^[a-z0-9._-]{3,64}$'),
    password_hash  text not null,
    role           text not null
                   constraint staff_role_known check (role in ('admin', 'reviewer', 'finance')),
    created_at     timestamptz not null default now()
);

-- One row per firm and program year (owner: issuer; redeemer adds to `redeemed`).
-- `cap` is a copy of the year's cap_per_firm so that Postgres itself refuses a grant past it;
-- lowering the program's cap updates every copy, and the CHECK refuses it below a grant.
create table firm_years (
    firm_id    uuid not null references firms (id),
    year       integer not null references program_years (year),
    admitted   boolean not null default false,
    cap        numeric(14, 2) not null
               constraint firm_years_cap_positive check (cap > 0),
    granted    numeric(14, 2) not null default 0
               constraint firm_years_granted_nonneg check (granted >= 0),
    redeemed   numeric(14, 2) not null default 0
               constraint firm_years_redeemed_nonneg check (redeemed >= 0),
    constraint firm_years_pkey primary key (firm_id, year),
    constraint firm_years_within_cap check (granted <= cap),
    constraint firm_years_redeemed_within_granted check (redeemed <= granted)
);

-- Vouchers (owner: issuer; redeemer moves `redeemed`, `redemption_count` and the status
-- between active and exhausted).
create table vouchers (
    id                uuid primary key,
    code              text not null constraint vouchers_code_key unique
                      constraint vouchers_code_form check (code ~ '^BA[0-9]{2}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$'),
    year              integer not null references program_years (year),
    firm_id           uuid not null references firms (id),
    platform_id       uuid not null references platforms (id),
    annual_fee        numeric(14, 2) not null
                      constraint vouchers_annual_fee_positive check (annual_fee > 0),
    face_value        numeric(14, 2) not null
                      constraint vouchers_face_value_positive check (face_value > 0),
    redeemed          numeric(14, 2) not null default 0
                      constraint vouchers_redeemed_nonneg check (redeemed >= 0),
    redemption_count  integer not null default 0
                      constraint vouchers_redemption_count_nonneg check (redemption_count >= 0),
    status            text not null default 'active'
                      constraint vouchers_status_known
                      check (status in ('active', 'exhausted', 'cancelled', 'lapsed', 'expired')),
    kid               text not null,
    token             text not null,
    issued_at         timestamptz not null,
    lapses_at         timestamptz not null,
    expires_at        timestamptz not null,
    closed_at         timestamptz,
    constraint vouchers_redeemed_within_face check (redeemed <= face_value),
    constraint vouchers_closed_when_final
        check ((status in ('cancelled', 'lapsed', 'expired')) = (closed_at is not null)),
    constraint vouchers_exhausted_means_empty check ((status = 'exhausted') = (redeemed = face_value))
);
create index vouchers_firm_year on vouchers (firm_id, year);
create index vouchers_active_by_lapse on vouchers (lapses_at) where status = 'active';

-- The journal (owner: core's ledger, written by whichever part moves the money, in the same
-- transaction as the move). Each entry is one balanced two-legged transfer: `amount` leaves
-- `credit` and arrives at `debit`. Accounts: budget:<year>, voucher:<id>, payable:<platform>,
-- paid:<platform>. Every balance is reproducible from these rows alone.
create table journal (
    id             bigint generated always as identity primary key,
    kind           text not null
                   constraint journal_kind_known
                   check (kind in ('issue', 'redeem', 'reversal', 'cancel', 'lapse', 'expire', 'payment')),
    debit          text not null,
    credit         text not null,
    amount         numeric(14, 2) not null
                   constraint journal_amount_positive check (amount > 0),
    year           integer not null,
    voucher_id     uuid,
    redemption_id  uuid,
    statement_id   uuid,
    created_at     timestamptz not null default now(),
    constraint journal_two_accounts check (debit <> credit)
);
create index journal_voucher on journal (voucher_id) where voucher_id is not null;

-- The audit log (owner: core's audit). Appended in the transaction of the change it records;
-- never updated or deleted (a trigger refuses both). `xid` lets the sealer take only entries
-- whose transaction has ended, so a slow transaction can never be skipped.
create table audit_log (
    seq      bigint generated always as identity primary key,
    at       timestamptz not null default clock_timestamp(),
    xid      xid8 not null default pg_current_xact_id(),
    actor    text not null,
    action   text not null,
    subject  text,
    detail   jsonb not null default '{}'::jsonb
);

create function audit_log_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'audit_log is append-only' using errcode = 'insufficient_privilege';
end $$;

create trigger audit_log_append_only
    before update or delete or truncate on audit_log
    for each statement execute function audit_log_append_only();

-- The hash chain (owner: core's audit sealer): position n holds
-- sha256(hash(n-1) || canonical(entry)); a single sealer extends it in batches.
create table audit_chain (
    pos       bigint primary key
              constraint audit_chain_pos_positive check (pos > 0),
    seq       bigint not null constraint audit_chain_seq_key unique,
    hash      bytea not null
              constraint audit_chain_hash_len check (octet_length(hash) = 32),
    sealed_at timestamptz not null default now()
);

create index audit_log_xid on audit_log (xid, seq);

-- The sealer's progress: every entry whose transaction id is below the watermark is sealed.
create table audit_seal_state (
    id             boolean primary key default true
                   constraint audit_seal_state_single check (id),
    xid_watermark  xid8 not null
);
insert into audit_seal_state (xid_watermark) values ('0'::xid8);
