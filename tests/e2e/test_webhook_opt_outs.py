"""Opt-outs Meta reports after the send reach do_not_contact, through the real receiver (uvicorn) and the real
PostgreSQL: a `failed` status with error 131050 and a `user_preferences` 'stop' put the number on DNC in the
transaction that stores the event, with the event as the source; a rebuilt plan drops the number and the
sender's claim skips it. A 'resume' is recorded only."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
import pytest
import sqlalchemy as sa

from include.content import readiness as content

from include.delivery import planning
from include.reporting.webhook_reconciliation import reconcile_webhooks
from tests.support import TEST_APP_SECRET, ReceiverServer
from tests.world import DAY, make_ready, planned_world, rows, scalar, seed, send_everything

pytestmark = pytest.mark.e2e

TEMPLATES = {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"}
WABA = "200000000000001"


@pytest.fixture
def receiver(app_db):
    r = ReceiverServer(app_db)
    yield r
    r.stop()


def post(receiver, payload: dict) -> httpx.Response:
    body = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(TEST_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(receiver.url, content=body, headers={"X-Hub-Signature-256": sig,
                                                           "Content-Type": "application/json"})


def envelope(value: dict, field: str = "messages") -> dict:
    return {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": field, "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "918000000001", "phone_number_id": "100000000000001"}, **value}}]}]}


def failed_status(phone: str, code: int, wamid: str = "wamid.OPTOUT1", key: str | None = None) -> dict:
    """A `failed` status webhook as Meta sends it after the send (recipient_id is the wa_id, no '+')."""
    titles = {131050: "Unable to deliver message: user has stopped marketing messages",
              131026: "Message undeliverable"}
    item = {"id": wamid, "status": "failed", "timestamp": "1763870000", "recipient_id": phone.lstrip("+"),
            "errors": [{"code": code, "title": titles[code], "message": titles[code],
                        "error_data": {"details": titles[code]},
                        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]}
    if key:
        item["biz_opaque_callback_data"] = key
    return envelope({"statuses": [item]})


def user_preferences(phone: str, value: str, ts: int = 1763870100) -> dict:
    """Meta's `user_preferences` webhook (a user stopped or resumed marketing messages in WhatsApp's settings),
    shaped as documented at
    https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/user_preferences
    """
    wa_id = phone.lstrip("+")
    return envelope({"contacts": [{"profile": {"name": "Advisor"}, "wa_id": wa_id}],
                     "user_preferences": [{"wa_id": wa_id, "detail": f"User requested to {value} marketing messages",
                                           "category": "marketing_messages", "value": value, "timestamp": ts}]},
                    field="user_preferences")


def dnc_of(engine, phone: str):
    got = rows(engine, """SELECT d.source, d.reason, d.added_by, e.kind, e.status, e.from_phone
                          FROM do_not_contact d LEFT JOIN webhook_events e ON e.event_id = d.source_event_id
                          WHERE d.phone_e164 = :p""", p=phone)
    return got[0] if got else None


def wait_dnc(engine, phone: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (row := dnc_of(engine, phone)) is not None:
            return row
        time.sleep(0.1)
    return None


def planned(engine) -> dict[str, int]:
    """phone -> advisor_id of today's plan."""
    return {r.phone_e164: r.advisor_id for r in rows(engine, """
        SELECT a.phone_e164, a.advisor_id FROM delivery_plan p JOIN advisors a USING (advisor_id)
        WHERE p.business_date = :d ORDER BY a.advisor_id""", d=DAY)}


def build(engine):
    content.assign_content(engine, DAY)
    return planning.build_plan(engine, DAY, TEMPLATES, jitter_window_s=5)


# -- 131050 in a failed status --------------------------------------------------------------------------------
def test_a_131050_failed_status_puts_the_number_on_dnc_and_a_rebuilt_plan_drops_it(app_db, receiver):
    seed(app_db, advisors=60)
    make_ready(app_db)
    build(app_db)
    before = planned(app_db)
    opted, undeliverable = list(before)[:2]
    assert post(receiver, failed_status(opted, 131050, "wamid.A")).status_code == 200
    assert post(receiver, failed_status(undeliverable, 131026, "wamid.B")).status_code == 200
    # Committed before the 200: no waiting needed.
    got = dnc_of(app_db, opted)
    assert got is not None, "a 131050 failed status must put the number on do_not_contact"
    assert (got.source, got.added_by, got.kind, got.status, got.from_phone) == (
        "api_opt_out", "whatsapp_webhook", "status", "failed", opted)
    assert "131050" in got.reason
    assert dnc_of(app_db, undeliverable) is None  # 131026 is not an opt-out
    assert receiver.stats.opt_outs == 1
    # The next plan: eligible_advisors excludes DNC numbers, and a rebuild removes the planned row.
    result = build(app_db)
    after = planned(app_db)
    assert opted not in after and undeliverable in after
    assert result.removed == 1 and len(after) == len(before) - 1
    assert scalar(app_db, "SELECT count(*) FROM eligible_advisors WHERE phone_e164 = :p", p=opted) == 0


def test_a_131050_from_the_sandbox_after_acceptance_lands_on_dnc_and_on_the_delivery(app_db, sandbox, receiver):
    # Research digit 8: the API accepts, then Meta reports failed with 131050 by webhook.
    planned_world(app_db, advisors=40, research_digits="8")
    phone = scalar(app_db, "SELECT phone_e164 FROM advisors WHERE phone_e164 LIKE '+9199000000%8'")
    sandbox.configure(webhooks={"url": receiver.url, "sent_delay_s": 0.05})
    send_everything(app_db, sandbox)
    got = wait_dnc(app_db, phone)
    assert got is not None and (got.source, got.kind, got.status) == ("api_opt_out", "status", "failed")
    reconcile_webhooks(app_db)
    d = rows(app_db, "SELECT d.status, d.error_code FROM deliveries d JOIN advisors a USING (advisor_id) "
                     "WHERE a.phone_e164 = :p", p=phone)[0]
    assert (d.status, d.error_code) == ("failed", 131050)


def test_the_opt_out_is_in_the_same_transaction_as_the_event(app_db, receiver):
    """If the DNC insert fails, the event is not stored either (500: Meta retries); the retry stores both."""
    phone = "+919812345670"
    with app_db.begin() as c:
        c.execute(sa.text("""
            CREATE FUNCTION refuse_dnc() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'do_not_contact unavailable'; END $$;
            CREATE TRIGGER refuse_dnc BEFORE INSERT ON do_not_contact FOR EACH ROW EXECUTE FUNCTION refuse_dnc();"""))
    assert post(receiver, failed_status(phone, 131050)).status_code == 500
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 0
    with app_db.begin() as c:
        c.execute(sa.text("DROP TRIGGER refuse_dnc ON do_not_contact; DROP FUNCTION refuse_dnc();"))
    assert post(receiver, failed_status(phone, 131050)).status_code == 200  # Meta's retry
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 1
    assert dnc_of(app_db, phone).kind == "status"


# -- user_preferences ------------------------------------------------------------------------------------------
def test_user_preferences_stop_from_the_sandbox_puts_the_number_on_dnc_and_the_claim_skips_it(
        app_db, sandbox, receiver):
    planned_world(app_db, advisors=40, research_digits="")
    sandbox.configure(webhooks={"url": receiver.url})
    phone, advisor = next(iter(planned(app_db).items()))
    r = sandbox.admin.post("/_sandbox/user_preferences", json={"wa_id": phone, "value": "stop"})
    assert r.status_code == 200, r.text
    got = wait_dnc(app_db, phone)
    assert got is not None, "a user_preferences stop must put the number on do_not_contact"
    assert (got.source, got.kind, got.status, got.from_phone) == ("api_opt_out", "user_preference", "stop", phone)
    assert "user_preferences" in got.reason
    # The plan was built before the webhook; the sender's claim re-reads DNC and skips the row.
    send_everything(app_db, sandbox)
    d = rows(app_db, "SELECT status, skip_reason, wamid FROM deliveries WHERE advisor_id = :a", a=advisor)[0]
    assert (d.status, d.skip_reason, d.wamid) == ("skipped", "dnc_at_send_time", None)
    assert not sandbox.ledger(to=phone)
    assert sandbox.ledger_stats()["accepted"] == len(planned(app_db)) - 1


def test_user_preferences_resume_is_recorded_but_never_removes_a_dnc_entry(app_db, receiver):
    seed(app_db, advisors=40)
    make_ready(app_db)
    build(app_db)
    phone = next(iter(planned(app_db)))
    assert post(receiver, user_preferences(phone, "stop", ts=1763870100)).status_code == 200
    assert post(receiver, user_preferences(phone, "resume", ts=1763870200)).status_code == 200
    # A replay of the stop is one event, not two.
    assert post(receiver, user_preferences(phone, "stop", ts=1763870100)).status_code == 200
    events = rows(app_db, "SELECT kind, status, from_phone FROM webhook_events ORDER BY event_id")
    assert [(e.kind, e.status, e.from_phone) for e in events] == [
        ("user_preference", "stop", phone), ("user_preference", "resume", phone)]
    got = dnc_of(app_db, phone)
    assert got is not None and got.status == "stop"  # still on the list: removal is a human decision
    build(app_db)
    assert phone not in planned(app_db)
    # A resume for a number that never stopped adds nothing either.
    other = list(planned(app_db))[0]
    assert post(receiver, user_preferences(other, "resume")).status_code == 200
    assert dnc_of(app_db, other) is None and other in planned(app_db)


def test_a_preference_change_sent_as_a_system_message_is_an_opt_out_too(app_db, receiver):
    phone = "+919812345671"
    msg = {"from": phone.lstrip("+"), "id": "wamid.SYS1", "timestamp": "1763870300", "type": "system",
           "system": {"body": "User requested to stop marketing messages", "marketing": "stop",
                      "type": "user_preference_changed"}}
    assert post(receiver, envelope({"messages": [msg]})).status_code == 200
    got = dnc_of(app_db, phone)
    assert got is not None and (got.source, got.kind) == ("api_opt_out", "message")
