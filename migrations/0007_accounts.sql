-- Accounts (owner: accounts): sessions that end at once, staff activation and firms' password
-- reset codes, disabled staff and TOTP second factors.

-- A staff account created by an admin has no password until its owner activates it; a reset
-- clears the password and the authenticator again.
alter table staff alter column password_hash drop not null;
alter table staff
    add column disabled        boolean not null default false,
    -- Base32 TOTP secret (RFC 6238, SHA-1, 6 digits, 30 s); null until enrolled.
    add column totp_secret     text,
    -- The last 30-second step whose code was accepted: a code is taken once, never replayed.
    add column totp_last_step  bigint,
    add column last_login_at   timestamptz,
    add column created_by      text,
    add column updated_at      timestamptz;

-- Every session of a firm or a staff member. The token carries the row's id; a request is
-- served only while the row is not ended, so logout, a password change, a reset or disabling
-- ends it on every replica at once, with or without Redis.
create table sessions (
    id          uuid primary key,
    firm_id     uuid references firms (id) on delete cascade,
    staff_id    uuid references staff (id) on delete cascade,
    created_at  timestamptz not null,
    expires_at  timestamptz not null,
    ended_at    timestamptz,
    constraint sessions_one_subject check ((firm_id is null) <> (staff_id is null))
);
create index sessions_firm_live on sessions (firm_id) where ended_at is null;
create index sessions_staff_live on sessions (staff_id) where ended_at is null;

-- Single-use codes, stored as SHA-256 of the code: staff activation (72 h) and firms'
-- password reset issued by the hotline (24 h). Issuing a new code voids the subject's older ones.
create table account_codes (
    code_hash   bytea primary key,
    kind        text not null
                constraint account_codes_kind_known check (kind in ('activation', 'firm_reset')),
    firm_id     uuid references firms (id) on delete cascade,
    staff_id    uuid references staff (id) on delete cascade,
    created_by  text not null,
    created_at  timestamptz not null,
    expires_at  timestamptz not null,
    used_at     timestamptz,
    constraint account_codes_one_subject check ((firm_id is null) <> (staff_id is null))
);
create index account_codes_staff on account_codes (staff_id) where used_at is null;
create index account_codes_firm on account_codes (firm_id) where used_at is null;
