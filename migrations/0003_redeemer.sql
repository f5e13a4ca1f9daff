-- API keys, redemptions, idempotency (owner: redeemer).

create table api_keys (
    id            uuid primary key,
    platform_id   uuid not null references platforms (id),
    -- What the console shows to tell keys apart, e.g. 'vk_live_Ab3dE6gH'; never enough to use.
    display       text not null,
    -- SHA-256 of the whole key; the key itself is shown once and never stored.
    hash          bytea not null constraint api_keys_hash_key unique
                  constraint api_keys_hash_len check (octet_length(hash) = 32),
    created_at    timestamptz not null default now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
create index api_keys_platform on api_keys (platform_id);

create table redemptions (
    id                       uuid primary key,
    platform_id              uuid not null references platforms (id),
    voucher_id               uuid not null references vouchers (id),
    firm_id                  uuid not null references firms (id),
    year                     integer not null,
    invoice_no               text not null
                             constraint redemptions_invoice_no_len check (char_length(invoice_no) between 1 and 64),
    bill_amount              numeric(14, 2) not null
                             constraint redemptions_bill_positive check (bill_amount > 0),
    discount                 numeric(14, 2) not null
                             constraint redemptions_discount_positive check (discount > 0),
    voucher_remaining_after  numeric(14, 2) not null
                             constraint redemptions_remaining_nonneg check (voucher_remaining_after >= 0),
    contract_no              text
                             constraint redemptions_contract_no_len check (char_length(contract_no) between 1 and 64),
    billing_period           text
                             constraint redemptions_billing_period_form check (billing_period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    status                   text not null default 'active'
                             constraint redemptions_status_known check (status in ('active', 'reversed')),
    created_at               timestamptz not null,
    reversed_at              timestamptz,
    reversal_reason          text,
    -- Set when the month's statement is approved: from then on the redemption cannot be reversed.
    locked                   boolean not null default false,
    constraint redemptions_platform_invoice_key unique (platform_id, invoice_no),
    constraint redemptions_discount_within_bill check (discount <= bill_amount),
    constraint redemptions_reversal_recorded check ((status = 'reversed') = (reversed_at is not null))
);
create index redemptions_voucher on redemptions (voucher_id);
-- Rows arrive in time order, so a BRIN index finds a day's or a month's rows (settlement, a
-- platform's monthly list) at almost no cost to each insert; every btree index here is paid
-- for by every redemption.
create index redemptions_created on redemptions using brin (created_at);

-- The first answer to each Idempotency-Key, per platform, replayed to every retry.
create table idempotency_keys (
    platform_id    uuid not null,
    key            text not null,
    fingerprint    bytea not null,
    outcome        text not null,
    detail         text,
    redemption_id  uuid,
    created_at     timestamptz not null default now(),
    constraint idempotency_keys_pkey primary key (platform_id, key)
);

-- One redemption in one round trip (SPEC §5): check the API key, claim the idempotency key
-- (an advisory lock says whether a request with it is in flight; the table says whether one
-- was answered), then decide with guarded relative updates that touch only this voucher's and
-- this firm's rows. Business refusals are answers too: they are stored and returned, not raised.
create function redeem_voucher(
    p_key_hash bytea, p_key text, p_fingerprint bytea,
    p_voucher uuid, p_code text, p_invoice text, p_bill numeric,
    p_contract text, p_period text, p_now timestamptz, p_id uuid)
returns table (outcome text, detail text, replayed boolean, key_id uuid, redemption_id uuid,
               voucher_id uuid, discount numeric, voucher_remaining numeric,
               created_at timestamptz)
language plpgsql as $$
declare
    v_key       uuid;
    v_platform  uuid;
    v           record;
    stored      record;
    r           record;
    v_want      numeric;
    v_discount  numeric;
    v_remaining numeric;
    v_status    text;
    v_first     boolean := true;
    v_outcome   text;
    v_detail    text;
begin
    select k.id, k.platform_id into v_key, v_platform
      from api_keys k join platforms p on p.id = k.platform_id
     where k.hash = p_key_hash and k.revoked_at is null and p.active;
    if not found then
        return query select 'unauthorized'::text, 'the API key is unknown or revoked'::text,
            false, null::uuid, null::uuid, null::uuid, null::numeric, null::numeric, null::timestamptz;
        return;
    end if;

    -- Keys are scoped to the platform (any of its API keys).
    if not pg_try_advisory_xact_lock(hashtextextended(v_platform::text || ':' || p_key, 0)) then
        return query select 'idempotency_in_flight'::text,
            'a request with this Idempotency-Key is still being processed'::text,
            false, v_key, null::uuid, null::uuid, null::numeric, null::numeric, null::timestamptz;
        return;
    end if;

    select * into stored from idempotency_keys k where k.platform_id = v_platform and k.key = p_key;
    if found then
        if stored.fingerprint <> p_fingerprint then
            return query select 'idempotency_key_reused'::text,
                'this Idempotency-Key was used with a different request'::text,
                false, v_key, null::uuid, null::uuid, null::numeric, null::numeric, null::timestamptz;
            return;
        end if;
        if stored.outcome = 'created' then
            select * into r from redemptions x where x.id = stored.redemption_id;
            return query select 'created'::text, null::text, true, v_key, r.id, r.voucher_id, r.discount,
                r.voucher_remaining_after, r.created_at;
        else
            return query select stored.outcome, stored.detail, true, v_key, null::uuid, null::uuid,
                null::numeric, null::numeric, null::timestamptz;
        end if;
        return;
    end if;

    -- Decide.
    select x.id, x.platform_id, x.firm_id, x.year, x.status, x.face_value - x.redeemed as remaining,
           x.redemption_count, x.lapses_at, x.expires_at, p.rate, p.redeem_deadline
      into v
      from vouchers x join program_years p on p.year = x.year
     where (p_voucher is not null and x.id = p_voucher) or (p_voucher is null and x.code = p_code);
    if not found then
        v_outcome := 'invalid_voucher';
        v_detail := 'no voucher has this code';
    elsif v.platform_id <> v_platform then
        v_outcome := 'wrong_platform';
        v_detail := 'this voucher is bound to another platform';
    elsif v.status in ('cancelled', 'lapsed', 'expired') then
        v_outcome := 'voucher_not_active';
        v_detail := 'this voucher is ' || v.status;
    elsif p_now > v.expires_at or p_now > v.redeem_deadline then
        v_outcome := 'voucher_not_active';
        v_detail := 'this voucher is past the redeem deadline';
    elsif v.redemption_count = 0 and p_now > v.lapses_at then
        v_outcome := 'voucher_not_active';
        v_detail := 'this voucher lapsed unused';
    elsif exists (select 1 from redemptions x where x.platform_id = v_platform and x.invoice_no = p_invoice) then
        v_outcome := 'duplicate_invoice';
        v_detail := 'this platform already redeemed against this invoice number';
    else
        -- floor_fen(bill × rate): the product is positive, so truncation is the floor.
        v_want := trunc(p_bill * v.rate, 2);
        v_remaining := v.remaining;
        v_status := v.status;
        loop
            if not v_first then
                select x.face_value - x.redeemed, x.status into v_remaining, v_status
                  from vouchers x where x.id = v.id;
            end if;
            v_first := false;
            if v_status <> 'active' or v_remaining <= 0 then
                v_outcome := case when v_status in ('active', 'exhausted') then 'voucher_exhausted'
                                  else 'voucher_not_active' end;
                v_detail := case when v_outcome = 'voucher_exhausted' then 'this voucher has no balance left'
                                 else 'this voucher is ' || v_status end;
                exit;
            end if;
            v_discount := least(v_want, v_remaining);
            if v_discount <= 0 then
                v_outcome := 'bill_too_small';
                v_detail := 'the bill is too small: its share rounds down to 0.00';
                exit;
            end if;
            -- Guarded relative update: applies only if the balance still covers it; under
            -- READ COMMITTED a concurrent redemption makes it re-check, and a miss loops.
            update vouchers x
               set redeemed = x.redeemed + v_discount,
                   redemption_count = x.redemption_count + 1,
                   status = case when x.redeemed + v_discount = x.face_value then 'exhausted' else 'active' end
             where x.id = v.id and x.status = 'active' and x.face_value - x.redeemed >= v_discount
            returning x.face_value - x.redeemed into v_remaining;
            if found then
                v_outcome := 'created';
                exit;
            end if;
        end loop;
    end if;

    if v_outcome = 'created' then
        update firm_years f set redeemed = f.redeemed + v_discount
         where f.firm_id = v.firm_id and f.year = v.year;
        insert into redemptions (id, platform_id, voucher_id, firm_id, year, invoice_no, bill_amount,
                                 discount, voucher_remaining_after, contract_no, billing_period, created_at)
        values (p_id, v_platform, v.id, v.firm_id, v.year, p_invoice, p_bill, v_discount, v_remaining,
                p_contract, p_period, p_now);
        insert into journal (kind, debit, credit, amount, year, voucher_id, redemption_id, created_at)
        values ('redeem', 'payable:' || v_platform, 'voucher:' || v.id, v_discount, v.year, v.id, p_id, p_now);
        insert into audit_log (actor, action, subject, detail)
        values ('platform:' || v_platform, 'redemption.create', 'redemption:' || p_id,
                jsonb_build_object('voucher_id', v.id, 'invoice_no', p_invoice,
                                   'bill_amount', p_bill::text, 'discount', v_discount::text,
                                   'voucher_remaining', v_remaining::text));
        insert into idempotency_keys (platform_id, key, fingerprint, outcome, redemption_id)
        values (v_platform, p_key, p_fingerprint, 'created', p_id);
        return query select 'created'::text, null::text, false, v_key, p_id, v.id, v_discount, v_remaining, p_now;
    else
        insert into idempotency_keys (platform_id, key, fingerprint, outcome, detail)
        values (v_platform, p_key, p_fingerprint, v_outcome, v_detail);
        return query select v_outcome, v_detail, false, v_key, null::uuid, null::uuid, null::numeric,
            null::numeric, null::timestamptz;
    end if;
end $$;
