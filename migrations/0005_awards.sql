-- The rules module's award register (owner: issuer). A reviewer records an award under one
-- measure of the policy; the evaluation that justified it (version, parameter hash, trace) is
-- kept with it, so the award can be checked against the policy text years later.

-- One row per recorded award. Never updated.
create table awards (
    id              uuid primary key,
    measure         text not null
                    constraint awards_measure_form check (measure ~ '^[a-z0-9_]{1,64}$'),
    award_date      date not null,
    year            integer not null
                    constraint awards_year_range check (year between 2021 and 2100),
    applicant_uscc  text not null
                    constraint awards_applicant_uscc_form check (applicant_uscc ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'),
    award           numeric(14, 2) not null
                    constraint awards_award_positive check (award > 0),
    policy_version  text not null
                    constraint awards_policy_version_len check (char_length(policy_version) between 1 and 32),
    params_hash     text not null
                    constraint awards_params_hash_form check (params_hash ~ '^[0-9a-f]{64}$'),
    annual_quota    integer
                    constraint awards_annual_quota_nonneg check (annual_quota >= 0),
    facts           jsonb not null
                    constraint awards_facts_object check (jsonb_typeof(facts) = 'object'),
    trace           jsonb not null
                    constraint awards_trace_array check (jsonb_typeof(trace) = 'array'),
    recorded_at     timestamptz not null default now(),
    recorded_by     text not null
                    constraint awards_recorded_by_len check (char_length(recorded_by) between 1 and 64),
    constraint awards_year_of_date check (year = extract(year from award_date))
);
create index awards_by_year_measure on awards (year, measure, recorded_at);

-- 十(1) revised: "给予协会100万元一次性支持". The register supplies `previously_awarded` itself and
-- serialises an association's awards, so this index is the backstop: Postgres refuses a second
-- revised association award to the same applicant whatever the code does.
create unique index awards_association_once
    on awards (applicant_uscc)
    where measure = 'association' and policy_version = 'revised';

-- Awards counted per measure and calendar year (every award, capped measure or not). An award
-- takes a slot with one conditional update (`awarded < quota`) as the last statement of its
-- transaction, so concurrent awards queue on the row and can never pass the quota; the quota
-- itself comes from the policy version in force on the award's date.
create table award_counts (
    measure  text not null
             constraint award_counts_measure_form check (measure ~ '^[a-z0-9_]{1,64}$'),
    year     integer not null
             constraint award_counts_year_range check (year between 2021 and 2100),
    awarded  integer not null default 0
             constraint award_counts_awarded_nonneg check (awarded >= 0),
    constraint award_counts_pkey primary key (measure, year)
);
