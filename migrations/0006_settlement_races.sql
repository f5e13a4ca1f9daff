-- Issue 11: one floor-to-the-fen for Rust and SQL, redeem_voucher replaced explicitly, and a
-- voucher can no longer be issued already expired.

-- floor_fen(x): x floored to the fen (MEASURES.md "Common rules", SPEC §2). The one definition
-- SQL uses; Rust's `voucher_rules::amount::floor_fen` is tested against it pairwise on the same
-- inputs (tests/src/migrations.rs). The cast to numeric(14,2) is exact (the value is already
-- whole fen) and raises on overflow rather than falling back to anything.
create function floor_fen(p numeric) returns numeric
language sql immutable strict parallel safe as $$
    select (floor(p * 100) / 100)::numeric(14, 2)
$$;

-- A voucher is never issued after its redeem deadline (a claim straddling midnight on Dec 31
-- once took the year before the time). NOT VALID: enforced for every new or updated row at
-- once; a database holding such a voucher from before can be repaired, then
-- `alter table vouchers validate constraint vouchers_issued_before_expiry`.
alter table vouchers add constraint vouchers_issued_before_expiry
    check (issued_at <= expires_at) not valid;

-- redeem_voucher lives in migrations that replace it explicitly: 0003 created it, this one
-- replaces it (floor_fen instead of trunc). Never edit an earlier definition: add a migration
-- with `create or replace function redeem_voucher` carrying the whole new body.
create or replace function redeem_voucher(
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
        v_want := floor_fen(p_bill * v.rate);
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
