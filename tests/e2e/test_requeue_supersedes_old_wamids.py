"""A requeued delivery forgets its old wamid: a late webhook of the earlier attempt can neither upgrade a
failed resend nor settle an unknown one (PostgreSQL, the real reconciliation SQL and the real receiver store)."""
import json

import pytest
import sqlalchemy as sa

from tests.world import DAY, rows, scalar, seed

pytestmark = pytest.mark.e2e


def _status_event(key: str, wamid: str, status: str, ts: int) -> dict:
    from include.whatsapp.webhook_receiver import parse_events

    body = {"object": "whatsapp_business_account", "entry": [{"id": "200000000000001", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {
            "display_phone_number": "918000000001", "phone_number_id": "100000000000001"},
            "statuses": [{"id": wamid, "status": status, "timestamp": str(ts), "recipient_id": "919800000001",
                          "biz_opaque_callback_data": key}]}}]}]}
    return parse_events(body), json.dumps(body)


def test_old_webhooks_never_settle_or_upgrade_a_resend(app_db):
    from include.operations import actions as ops
    from include.reporting.webhook_reconciliation import reconcile_webhooks
    from include.delivery.unknown_outcomes import settle
    from include.whatsapp.webhook_receiver import store

    seed(app_db, advisors=5)
    aid = rows(app_db, "SELECT advisor_id FROM advisors ORDER BY 1 LIMIT 1")[0][0]
    key = f"{DAY}:{aid}"
    with app_db.begin() as c:  # the first attempt was accepted as wamid.OLD, then failed by webhook (131000)
        c.execute(sa.text("INSERT INTO deliveries (idempotency_key, business_date, advisor_id, to_phone, status, "
                          "wamid, attempts, error_code, error_title, failed_at, accepted_at, sending_at) SELECT :k, :d, "
                          "advisor_id, phone_e164, 'failed', 'wamid.OLD', 1, 131000, 'x', now(), now(), now() "
                          "FROM advisors WHERE advisor_id = :a"), {"k": key, "d": DAY, "a": aid})
    ops.retry_failed_deliveries(app_db, DAY, "transient failures during the outage", "tests")
    wamid, superseded, status = rows(app_db, "SELECT wamid, superseded_wamids, status FROM deliveries")[0]
    assert (wamid, superseded, status) == (None, ["wamid.OLD"], "queued")

    # The resend's outcome is unknown (a timeout); the old attempt's late 'sent' webhook arrives.
    with app_db.begin() as c:
        c.execute(sa.text("UPDATE deliveries SET status = 'unknown', attempts = 2, "
                          "sending_at = now() - interval '1 minute'"))
    events, raw = _status_event(key, "wamid.OLD", "sent", 1_764_000_000)
    store(app_db, [(e, raw) for e in events])
    unresolved = rows(app_db, "SELECT delivery_id, idempotency_key, status, sending_at FROM deliveries")
    settled = settle(app_db, unresolved, margin_s=10, min_age_s=20)
    assert settled.accepted == 0 and settled.unknown == 1  # the old attempt's webhook proves nothing

    # The resend then fails for good; the old attempt's 'delivered' webhook must not mark it delivered.
    with app_db.begin() as c:
        c.execute(sa.text("UPDATE deliveries SET status = 'failed', error_code = 131026, error_title = 'undeliverable'"))
    events, raw = _status_event(key, "wamid.OLD", "delivered", 1_764_000_005)
    store(app_db, [(e, raw) for e in events])
    reconcile_webhooks(app_db, orphan_after_s=0)
    assert rows(app_db, "SELECT status, error_code, wamid FROM deliveries")[0] == ("failed", 131026, None)
    notes = {r[0] for r in rows(app_db, "SELECT process_error FROM webhook_events WHERE processed_at IS NOT NULL")}
    assert notes == {"webhook of an earlier attempt (wamid superseded by a resend)"}
    assert scalar(app_db, "SELECT count(*) FROM webhook_events WHERE processed_at IS NULL") == 0
