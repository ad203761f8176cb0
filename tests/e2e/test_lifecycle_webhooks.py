"""Lifecycle webhooks through the real receiver (uvicorn) into the real PostgreSQL, sent by the real sandbox:
every kind is stored in webhook_events, and in the same transaction a template status or quality update moves
whatsapp_templates, a phone-number quality update moves sending_numbers, and an opt-out button reply puts the
number on do_not_contact — the contract the fan-out's control tick relies on. Replays and late (older) events
change nothing."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
import pytest

from tests.support import TEST_APP_SECRET
from tests.world import rows, scalar, seed

pytestmark = pytest.mark.e2e

WABA = "200000000000001"


def post(receiver, payload: dict) -> httpx.Response:
    body = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(TEST_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(receiver.url, content=body, headers={"X-Hub-Signature-256": sig,
                                                           "Content-Type": "application/json"})


def waba_webhook(field: str, value: dict, at: int) -> dict:
    return {"entry": [{"id": WABA, "time": at, "changes": [{"value": value, "field": field}]}],
            "object": "whatsapp_business_account"}


def wait_until(fn, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (got := fn()):
            return got
        time.sleep(0.1)
    return fn()


def template(engine, name: str, language: str = "en"):
    return rows(engine, "SELECT status, quality, status_reason, status_changed_at, status_event_id, wa_template_id "
                        "FROM whatsapp_templates WHERE name = :n AND language = :l", n=name, l=language)[0]


def number(engine, pnid: str):
    return rows(engine, "SELECT quality_rating, messaging_tier, throughput_mps, quality_event, quality_event_id "
                        "FROM sending_numbers WHERE phone_number_id = :p", p=pnid)[0]


def kinds(engine) -> dict[str, int]:
    return {r.kind: r.n for r in rows(engine, "SELECT kind, count(*) AS n FROM webhook_events GROUP BY kind")}


def test_every_webhook_kind_from_the_sandbox_is_stored_and_lifecycle_state_applied(app_db, sandbox, receiver):
    seed(app_db, advisors=20)
    admin = sandbox.admin
    admin.post("/_sandbox/templates/daily_pack_v1", json={"status": "PAUSED"}).raise_for_status()
    admin.post("/_sandbox/templates/daily_pack_hi_v1", json={"quality_score": "RED"}).raise_for_status()
    admin.post("/_sandbox/numbers/100000000000002", json={"quality_rating": "RED"}).raise_for_status()
    admin.post("/_sandbox/numbers/100000000000003", json={"throughput_level": "HIGH"}).raise_for_status()
    admin.post("/_sandbox/account_errors", json={}).raise_for_status()
    admin.post("/_sandbox/account_alerts", json={}).raise_for_status()
    admin.post("/_sandbox/inbound", json={"from": "+919812345678", "text": "When is the next pack?"}).raise_for_status()
    admin.post("/_sandbox/user_preferences", json={"wa_id": "+919812345679", "value": "resume"}).raise_for_status()
    r = httpx.post(f"{sandbox.url}/v21.0/100000000000001/messages",
                   headers={"Authorization": sandbox_auth()}, json=template_message("+919812345677"))
    assert r.status_code == 200, r.text
    expected = {"template_status", "template_quality", "phone_quality", "error", "account_alert", "message",
                "user_preference", "status"}
    got = wait_until(lambda: expected <= set(kinds(app_db)) and kinds(app_db))
    assert expected <= set(got), got

    t = template(app_db, "daily_pack_v1")
    assert t.status == "PAUSED" and "FIRST_PAUSE" in t.status_reason and t.status_event_id is not None
    assert t.wa_template_id  # Meta's template id, learnt from the webhook
    assert template(app_db, "daily_pack_hi_v1", "hi").quality == "RED"
    flagged = number(app_db, "100000000000002")
    assert (flagged.quality_rating, flagged.quality_event) == ("RED", "FLAGGED")
    assert number(app_db, "100000000000003").throughput_mps == 1000
    assert number(app_db, "100000000000001").quality_rating == "GREEN"  # only the flagged number moved
    # Lifecycle events are applied on arrival, so they are processed at once; each keeps its payload.
    pending = scalar(app_db, "SELECT count(*) FROM webhook_events WHERE kind IN ('template_status', "
                             "'template_quality', 'phone_quality', 'account_alert') AND processed_at IS NULL")
    assert pending == 0
    payload = rows(app_db, "SELECT payload FROM webhook_events WHERE kind = 'template_status'")[0].payload
    assert payload["event"] == "PAUSED" and payload["message_template_name"] == "daily_pack_v1"
    note = rows(app_db, "SELECT process_error FROM webhook_events WHERE kind = 'account_alert'")[0].process_error
    assert note == "recorded for the operators"
    assert receiver.stats.lifecycle_applied == 4


def sandbox_auth() -> str:
    from tests.support import TEST_TOKEN

    return f"Bearer {TEST_TOKEN}"


def template_message(to: str) -> dict:
    return {"messaging_product": "whatsapp", "to": to, "type": "template", "template": {
        "name": "daily_pack_v2", "language": {"code": "en"}, "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example/a.png"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": f"p{i}"} for i in range(3)]}]}}


def test_a_paused_template_webhook_updates_whatsapp_templates_and_replays_or_late_events_change_nothing(
        app_db, sandbox, receiver):
    seed(app_db, advisors=20)
    sandbox.admin.post("/_sandbox/templates/daily_pack_v1", json={"status": "PAUSED"}).raise_for_status()
    assert wait_until(lambda: template(app_db, "daily_pack_v1").status == "PAUSED")
    sandbox.admin.post("/_sandbox/templates/daily_pack_v1", json={"status": "APPROVED"}).raise_for_status()
    t = wait_until(lambda: (t := template(app_db, "daily_pack_v1")).status == "APPROVED" and t)
    assert "UNPAUSE" in t.status_reason
    tid = int(t.wa_template_id)
    # Meta retries: the same PAUSED webhook again is one event, and moves nothing back.
    paused = rows(app_db, "SELECT raw_body FROM webhook_events WHERE kind = 'template_status' AND status = 'PAUSED'")
    assert post(receiver, json.loads(paused[0].raw_body)).status_code == 200
    assert template(app_db, "daily_pack_v1").status == "APPROVED"
    assert scalar(app_db, "SELECT count(*) FROM webhook_events WHERE kind = 'template_status'") == 2
    # A late webhook (older entry.time than the state shown) is stored but changes nothing.
    old = waba_webhook("message_template_status_update", {
        "event": "DISABLED", "message_template_id": tid, "message_template_name": "daily_pack_v1",
        "message_template_language": "en", "reason": "NONE", "message_template_category": "MARKETING",
        "disable_info": {"disable_date": 1700000000}}, at=1700000000)
    assert post(receiver, old).status_code == 200
    assert template(app_db, "daily_pack_v1").status == "APPROVED"
    late = rows(app_db, "SELECT process_error FROM webhook_events WHERE kind = 'template_status' "
                        "AND status = 'DISABLED'")[0]
    assert "newer change" in late.process_error
    # Meta's locale spelling (en_US / en-US) and an id-only webhook still find the template.
    now = int(time.time()) + 5
    assert post(receiver, waba_webhook("message_template_status_update", {
        "event": "DISABLED", "message_template_id": tid, "reason": "NONE"}, at=now)).status_code == 200
    assert template(app_db, "daily_pack_v1").status == "DISABLED"
    assert post(receiver, waba_webhook("message_template_status_update", {
        "event": "REINSTATED", "message_template_id": 1, "message_template_name": "daily_pack_v1",
        "message_template_language": "en", "reason": "NONE"}, at=now + 1)).status_code == 200
    assert template(app_db, "daily_pack_v1").status == "APPROVED"
    # FLAGGED is a warning, not a status: stored, template still sendable.
    assert post(receiver, waba_webhook("message_template_status_update", {
        "event": "FLAGGED", "message_template_id": tid, "message_template_name": "daily_pack_v1",
        "message_template_language": "en", "reason": "NONE"}, at=now + 2)).status_code == 200
    assert template(app_db, "daily_pack_v1").status == "APPROVED"


def test_template_quality_and_timed_faults_reach_the_tables_with_no_request_to_the_sandbox(app_db, sandbox, receiver):
    seed(app_db, advisors=20)
    sandbox.admin.post("/_sandbox/templates/daily_pack_v2", json={"quality_score": "YELLOW"}).raise_for_status()
    assert wait_until(lambda: template(app_db, "daily_pack_v2").quality == "YELLOW")
    sandbox.faults(template_pause_in_s={"daily_pack_hi_v1": 0.3}, quality_red_in_s={"100000000000004": 0.3})
    assert wait_until(lambda: template(app_db, "daily_pack_hi_v1", "hi").status == "PAUSED", timeout=10)
    assert wait_until(lambda: number(app_db, "100000000000004").quality_rating == "RED", timeout=10)


def test_phone_quality_is_keyed_by_the_digits_of_the_display_number_and_mapped_honestly(app_db, receiver):
    seed(app_db, advisors=20)
    at = int(time.time())

    def pq(event: str, t: int, **extra) -> int:
        return post(receiver, waba_webhook("phone_number_quality_update", {
            "display_phone_number": "+91 80000 00004", "event": event, **extra}, at=t)).status_code

    assert pq("FLAGGED", at, max_daily_conversations_per_business="TIER_10K") == 200
    n = number(app_db, "100000000000004")
    assert (n.quality_rating, n.messaging_tier, n.quality_event) == ("RED", "TIER_10K", "FLAGGED")
    assert pq("UNFLAGGED", at + 1, current_limit="TIER_2K") == 200  # legacy field still understood
    n = number(app_db, "100000000000004")
    assert (n.quality_rating, n.messaging_tier) == ("UNKNOWN", "TIER_2K")  # not low; GREEN or YELLOW unknown
    # THROUGHPUT_UPGRADE's current_limit TIER_UNLIMITED is "higher throughput", not a messaging tier.
    assert pq("THROUGHPUT_UPGRADE", at + 2, current_limit="TIER_UNLIMITED") == 200
    n = number(app_db, "100000000000004")
    assert (n.throughput_mps, n.messaging_tier) == (1000, "TIER_2K")
    # A tier the planner cannot size (TIER_NOT_SET, the old TIER_1K) keeps the stored tier.
    assert pq("ONBOARDING", at + 3, max_daily_conversations_per_business="TIER_NOT_SET") == 200
    assert number(app_db, "100000000000004").messaging_tier == "TIER_2K"
    assert pq("DOWNGRADE", at + 4, max_daily_conversations_per_business="TIER_250") == 200
    assert number(app_db, "100000000000004").messaging_tier == "TIER_250"
    # Unknown numbers change nothing.
    assert post(receiver, waba_webhook("phone_number_quality_update", {
        "display_phone_number": "15550783881", "event": "FLAGGED"}, at=at)).status_code == 200
    assert scalar(app_db, "SELECT count(*) FROM sending_numbers WHERE quality_rating = 'RED'") == 0
    assert "unknown number" in rows(app_db, "SELECT process_error FROM webhook_events WHERE kind = 'phone_quality' "
                                            "ORDER BY event_id DESC LIMIT 1")[0].process_error


def test_an_opt_out_button_or_interactive_reply_puts_the_number_on_do_not_contact(app_db, sandbox, receiver):
    seed(app_db, advisors=20)
    admin = sandbox.admin
    button, interactive, list_row, other = "+919812345601", "+919812345602", "+919812345603", "+919812345604"
    admin.post("/_sandbox/inbound", json={"from": button, "type": "button", "text": "Stop promotions"}
               ).raise_for_status()
    # The label can be anything: an id or payload saying STOP is enough.
    admin.post("/_sandbox/inbound", json={"from": interactive, "type": "interactive", "text": "No thanks",
                                          "id": "STOP_PROMOTIONS"}).raise_for_status()
    admin.post("/_sandbox/inbound", json={"from": list_row, "type": "interactive", "interactive_type": "list_reply",
                                          "text": "Unsubscribe", "id": "row-3", "description": "No more packs"}
               ).raise_for_status()
    admin.post("/_sandbox/inbound", json={"from": other, "type": "button", "text": "Send me more",
                                          "payload": "MORE"}).raise_for_status()

    def dnc():
        return {r.phone_e164: r for r in rows(app_db, """
            SELECT d.phone_e164, d.source, e.kind, e.status FROM do_not_contact d
            JOIN webhook_events e ON e.event_id = d.source_event_id WHERE d.added_by = 'whatsapp_webhook'""")}

    got = wait_until(lambda: len(dnc()) >= 3 and dnc())
    assert set(got) == {button, interactive, list_row}
    assert {(r.source, r.kind) for r in got.values()} == {("inbound_opt_out", "message")}
    assert got[button].status == "button" and got[interactive].status == "interactive"
    assert wait_until(lambda: scalar(app_db, "SELECT count(*) FROM webhook_events WHERE kind = 'message'") == 4)
    assert other not in dnc()
