-- Invoice and contract numbers are compared in one normalised form (API.md, Conventions), so
-- "INV-X", "INV-X" with a zero-width space or a BOM, "INV‑X" with a non-breaking hyphen and
-- "ＩＮＶ－Ｘ" are one invoice. The server normalises what platforms send before storing it
-- (voucher_core::text::reference_key); reference_key() below is the same rule in SQL, tested
-- pairwise against the Rust one, for the nightly invariant and for rows stored before.

create function reference_key(p text) returns text
    language sql immutable strict parallel safe
as $$
    select regexp_replace(
        translate(normalize(p, NFKC),
                  E'\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u2043',
                  '-----------'),
        E'[[:space:]\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]',
        '', 'g')
$$;

-- What the nightly invariant looks up: each day's redemptions against every earlier one of the
-- same platform in normalised form.
create index redemptions_platform_invoice_ref on redemptions (platform_id, reference_key(invoice_no));

-- Rows stored before this migration may already hold look-alike duplicates. They are not merged
-- (each was acknowledged to a platform and may be on a statement): they are listed here for the
-- bureau to resolve with the platforms, and the nightly invariant keeps naming them.
create table invoice_collisions (
    platform_id     uuid not null references platforms (id),
    invoice_key     text not null,
    redemption_ids  uuid[] not null,
    invoice_nos     text[] not null,
    found_at        timestamptz not null default now(),
    constraint invoice_collisions_pkey primary key (platform_id, invoice_key)
);

insert into invoice_collisions (platform_id, invoice_key, redemption_ids, invoice_nos)
select platform_id, reference_key(invoice_no), array_agg(id order by created_at), array_agg(invoice_no order by created_at)
from redemptions
group by platform_id, reference_key(invoice_no)
having count(*) > 1;

do $$
declare n bigint;
begin
    select count(*) into n from invoice_collisions;
    if n > 0 then
        raise warning '% invoice numbers were redeemed more than once in look-alike forms; see table invoice_collisions', n;
    end if;
end $$;
