-- Verification means a reviewer looked (owner: accounts). 0009 made every firm that already held
-- a voucher `verified` without review, so a registration that squatted a real firm's USCC and
-- claimed a cent before verification existed would have kept claiming up to the cap and could
-- never be removed. Those firms go back to `pending`: the vouchers they hold keep working (the
-- vouchers trigger checks only new vouchers), their further claims wait for a reviewer, and they
-- stand in the reviewer's queue with the other pending firms.
update firms set verification = 'pending', reviewed_by = null, reviewed_at = null
where verification = 'verified' and reviewed_by = 'migration:0009';

-- Verification is final in the database, not only in the handlers: a verified firm is neither
-- moved to another state nor deleted. The claim's trigger reads the firm's row without a lock
-- and relies on this.
create function firms_verification_final() returns trigger
language plpgsql as $$
begin
    if old.verification = 'verified'
       and (tg_op = 'DELETE' or new.verification is distinct from 'verified') then
        raise exception 'firm % is verified; verification is final', old.id
            using errcode = 'check_violation', constraint = 'firms_verification_final',
                  table = 'firms';
    end if;
    if tg_op = 'DELETE' then
        return old;
    end if;
    return new;
end $$;
create trigger firms_verification_final before update of verification or delete on firms
    for each row execute function firms_verification_final();
