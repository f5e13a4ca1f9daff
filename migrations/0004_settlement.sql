-- Settlement (owner: settlement): nightly runs, quota releases, monthly statements.

-- The business date (Asia/Shanghai) on which the nightly job lapsed or expired a voucher, so a
-- report re-run for that date counts the same vouchers.
alter table vouchers add column closed_on date;

-- Quota slots the nightly job released, one row per firm and year per business date.
create table quota_releases (
    firm_id        uuid not null references firms (id),
    year           integer not null,
    business_date  date not null,
    constraint quota_releases_pkey primary key (firm_id, year, business_date)
);
create index quota_releases_date on quota_releases (business_date);

-- One row per business date: the report of its latest run.
create table settlement_runs (
    business_date  date primary key,
    report         jsonb not null,
    runs           integer not null default 1 constraint settlement_runs_runs_positive check (runs > 0),
    first_run_at   timestamptz not null default now(),
    last_run_at    timestamptz not null default now()
);

create table statements (
    id                 uuid primary key,
    platform_id        uuid not null references platforms (id),
    month              text not null
                       constraint statements_month_form check (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    status             text not null default 'draft'
                       constraint statements_status_known check (status in ('draft', 'approved', 'paid')),
    total              numeric(14, 2) not null default 0
                       constraint statements_total_nonneg check (total >= 0),
    line_count         integer not null default 0
                       constraint statements_line_count_nonneg check (line_count >= 0),
    created_at         timestamptz not null default now(),
    refreshed_at       timestamptz not null default now(),
    approved_at        timestamptz,
    approved_by        text,
    paid_at            timestamptz,
    paid_by            text,
    payment_reference  text
                       constraint statements_payment_reference_len check (char_length(payment_reference) between 1 and 100),
    constraint statements_platform_month_key unique (platform_id, month),
    constraint statements_approval_recorded
        check ((status in ('approved', 'paid')) = (approved_at is not null and approved_by is not null)),
    constraint statements_payment_recorded
        check ((status = 'paid') = (paid_at is not null and payment_reference is not null))
);

-- A redemption is on at most one statement.
create table statement_lines (
    statement_id   uuid not null references statements (id),
    redemption_id  uuid not null references redemptions (id)
                   constraint statement_lines_redemption_key unique,
    discount       numeric(14, 2) not null
                   constraint statement_lines_discount_positive check (discount > 0),
    constraint statement_lines_pkey primary key (statement_id, redemption_id)
);

-- The month (YYYY-MM) a redemption belongs to: the month it was made in, unless its
-- platform's statement for that month is already approved, then the first later month whose
-- statement is not (API.md, "POST /api/bureau/statements").
create function redemption_month(p_platform uuid, p_created timestamptz) returns text
language sql stable as $$
    with recursive m(month) as (
        select to_char(p_created at time zone 'Asia/Shanghai', 'YYYY-MM')
        union all
        select to_char(to_date(m.month, 'YYYY-MM') + interval '1 month', 'YYYY-MM') from m
        where exists (select 1 from statements s
                      where s.platform_id = p_platform and s.month = m.month and s.status <> 'draft')
    )
    select max(month) from m
$$;

-- The journal is append-only and in time order: BRIN finds a day's entries cheaply.
create index journal_created on journal using brin (created_at);
