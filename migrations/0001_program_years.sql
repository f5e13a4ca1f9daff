-- Program years (owner: issuer). One row per calendar year of the cloud-voucher program.
-- The quota counter lives here: only claims touch it (SPEC §2, "No hot rows"), and the CHECK
-- makes it impossible to admit more firms than the quota, whatever the code does.
create table program_years (
    year                integer primary key
                        constraint program_years_year_range check (year between 2021 and 2100),
    rate                numeric(5, 4) not null
                        constraint program_years_rate_range check (rate > 0 and rate <= 1),
    cap_per_firm        numeric(14, 2) not null
                        constraint program_years_cap_positive check (cap_per_firm > 0),
    firm_quota          integer not null
                        constraint program_years_quota_nonneg check (firm_quota >= 0),
    firms_admitted      integer not null default 0
                        constraint program_years_admitted_nonneg check (firms_admitted >= 0),
    claim_validity_days integer not null
                        constraint program_years_validity_range check (claim_validity_days between 1 and 366),
    redeem_deadline     timestamptz not null,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    constraint program_years_within_quota check (firms_admitted <= firm_quota)
);
