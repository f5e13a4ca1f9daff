"""A client generated from /openapi.json by openapi-python-client, used as a platform's
developer would: a firm claims a voucher, the platform verifies it, redeems it five times, and
lists the month's redemptions two at a time, following the `Link: rel="next"` header.

Run by ops/api-check with the generated package on sys.path; settings come from the
environment (BASE_URL, FIRM_USCC, FIRM_PASSWORD, PLATFORM_ID, PLATFORM_KEY)."""

import os
import sys
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

from voucher_api_client import AuthenticatedClient, Client
from voucher_api_client.api.platform import (
    get_v1_redemptions,
    post_v1_redemptions,
    post_v1_vouchers_verify,
)
from voucher_api_client.api.portal import post_api_portal_sessions, post_api_portal_vouchers
from voucher_api_client.models import (
    ClaimRequest,
    FirmLogin,
    RedemptionRequest,
    VerifyRequest,
)

SHANGHAI = timezone(timedelta(hours=8))  # no daylight saving time in China


def expect(response, status):
    if response.status_code != status:
        sys.exit(f"expected {status}, got {response.status_code}: {response.content[:500]!r}")
    return response.parsed


def next_cursor(headers):
    """The `cursor` in `Link: <URL>; rel="next"`, or None on the last page."""
    link = headers.get("link")
    if link is None:
        return None
    assert link.endswith('; rel="next"'), link
    url = link[link.index("<") + 1 : link.index(">")]
    return parse_qs(urlparse(url).query)["cursor"][0]


def main():
    base = os.environ["BASE_URL"]
    anonymous = Client(base_url=base, raise_on_unexpected_status=False)
    session = expect(
        post_api_portal_sessions.sync_detailed(
            client=anonymous,
            body=FirmLogin(uscc=os.environ["FIRM_USCC"], password=os.environ["FIRM_PASSWORD"]),
        ),
        200,
    )
    firm = AuthenticatedClient(base_url=base, token=session.token)
    platform = AuthenticatedClient(base_url=base, token=os.environ["PLATFORM_KEY"])

    voucher = expect(
        post_api_portal_vouchers.sync_detailed(
            client=firm,
            body=ClaimRequest(platform_id=uuid.UUID(os.environ["PLATFORM_ID"]), annual_fee="20000.00"),
        ),
        201,
    )
    print(f"claimed {voucher.code}: face value {voucher.face_value}")

    verified = expect(
        post_v1_vouchers_verify.sync_detailed(client=platform, body=VerifyRequest(voucher=voucher.token)),
        200,
    )
    assert verified.voucher.remaining == voucher.face_value, (verified.voucher.remaining, voucher.face_value)
    print(f"verified {verified.voucher.code}: {verified.voucher.remaining} left")

    invoices = [f"PY-{uuid.uuid4().hex[:8]}-{i}" for i in range(5)]
    for invoice in invoices:
        redemption = expect(
            post_v1_redemptions.sync_detailed(
                client=platform,
                idempotency_key=str(uuid.uuid4()),
                body=RedemptionRequest(voucher=voucher.code, invoice_no=invoice, bill_amount="1000.00"),
            ),
            201,
        )
        assert redemption.discount == "300.00", redemption.discount
    month = redemption.created_at.astimezone(SHANGHAI).strftime("%Y-%m")
    print(f"redeemed {len(invoices)} invoices in {month}")

    seen, pages, cursor = [], 0, None
    while True:
        kwargs = {"cursor": cursor} if cursor else {}
        response = get_v1_redemptions.sync_detailed(client=platform, month=month, limit=2, **kwargs)
        page = expect(response, 200)
        pages += 1
        assert len(page) <= 2, len(page)
        seen.extend(r.invoice_no for r in page)
        cursor = next_cursor(response.headers)
        if cursor is None:
            break
        assert pages < 10, "the pages never end"
    mine = [i for i in seen if i in invoices]
    assert mine == invoices, (mine, invoices)
    assert pages == (len(seen) + 1) // 2, (pages, len(seen))
    print(f"listed {len(seen)} redemptions in {pages} pages of 2")


if __name__ == "__main__":
    main()
