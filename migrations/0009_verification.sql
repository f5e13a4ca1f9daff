-- Verified firms only (owner: accounts). A registration is an application: the firm starts
-- `pending`, uploads its business licence (and, when its contact is not the legal
-- representative, a letter of authorisation), and a bureau reviewer marks it `verified` or
-- `rejected` with a reason (SPEC §2, "Who a firm is"). Only a verified firm can claim.

alter table firms
    add column verification         text not null default 'pending'
        constraint firms_verification_known
        check (verification in ('pending', 'verified', 'rejected')),
    -- Why the reviewer rejected the registration; the firm sees it. Cleared when it uploads again.
    add column verification_reason  text
        constraint firms_verification_reason_len
        check (char_length(verification_reason) between 1 and 500),
    -- The reviewer (staff username) of the latest decision, and when it was made.
    add column reviewed_by          text,
    add column reviewed_at          timestamptz,
    add constraint firms_rejected_has_reason
        check (verification <> 'rejected' or verification_reason is not null);

-- Firms registered before this migration: those that already hold a voucher were granted money
-- under the old rules and become `verified` (nothing already granted is taken away, and their
-- further claims keep working); every other firm starts `pending` like a new registration and
-- must upload its licence before it can claim.
update firms set verification = 'verified', reviewed_by = 'migration:0009', reviewed_at = now()
where exists (select 1 from vouchers v where v.firm_id = firms.id);

-- The reviewer's queue (pending, oldest first) and the filtered lists.
create index firms_verification_queue on firms (verification, created_at, id);

-- The files a firm uploads as evidence. Kept in Postgres (one authority, one backup); only ever
-- served to the bureau as an attachment, never rendered or executed by the server.
create table firm_evidence (
    id            uuid primary key,
    firm_id       uuid not null references firms (id) on delete cascade,
    kind          text not null
                  constraint firm_evidence_kind_known
                  check (kind in ('business_license', 'authorization_letter')),
    -- Sniffed from the file's own bytes and equal to the declared Content-Type.
    content_type  text not null
                  constraint firm_evidence_type_known
                  check (content_type in ('image/jpeg', 'image/png', 'application/pdf')),
    size          integer not null
                  constraint firm_evidence_size_range check (size between 1 and 5242880),
    bytes         bytea not null,
    uploaded_at   timestamptz not null,
    constraint firm_evidence_size_matches check (octet_length(bytes) = size)
);
-- Photos and PDFs are compressed already: store them out of line without trying again.
alter table firm_evidence alter column bytes set storage external;
create index firm_evidence_firm on firm_evidence (firm_id, uploaded_at, id);

-- At most 10 files per firm, decided by Postgres: the firm's row is locked, so concurrent
-- uploads of one firm count one after another and never pass the limit. (`no key update`: the
-- key-share lock a voucher's foreign key takes is not held up by it.)
create function firm_evidence_at_most_ten() returns trigger
language plpgsql as $$
begin
    perform 1 from firms where id = new.firm_id for no key update;
    if (select count(*) from firm_evidence where firm_id = new.firm_id) >= 10 then
        raise exception 'a firm keeps at most 10 evidence files'
            using errcode = 'check_violation', constraint = 'firm_evidence_at_most_ten',
                  table = 'firm_evidence';
    end if;
    return new;
end $$;
create trigger firm_evidence_at_most_ten before insert on firm_evidence
    for each row execute function firm_evidence_at_most_ten();

-- Only a verified firm gets a voucher, whatever path inserts it: the claim's own check answers
-- `not_verified` first, and this keeps the rule in the database that decides quota and money.
-- (Verification is final: a verified firm is never un-verified or deleted, so the row read here
-- cannot change before the claim commits.)
create function vouchers_firm_verified() returns trigger
language plpgsql as $$
begin
    if not exists (select 1 from firms where id = new.firm_id and verification = 'verified') then
        raise exception 'firm % is not verified', new.firm_id
            using errcode = 'check_violation', constraint = 'vouchers_firm_verified',
                  table = 'vouchers';
    end if;
    return new;
end $$;
create trigger vouchers_firm_verified before insert on vouchers
    for each row execute function vouchers_firm_verified();
