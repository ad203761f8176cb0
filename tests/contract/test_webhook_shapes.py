"""Contract: every webhook the sandbox sends has the shape of Meta's documentation.

Each fixture in tests/contract/fixtures/webhook_*.json is written from a Meta reference page (its "_source");
each test makes the real sandbox (a separate process, as `make sandbox` runs it) emit the webhook to a recorder
and compares with tests/contract/graph_shapes.py: same keys at every level, same value types, equal values
except ids and timestamps and the fixture's `_by_type` keys (phone numbers, BSUIDs, names, texts). Covered: sent / delivered / read / failed statuses (contacts, recipient_user_id, pricing, conversation on
old webhook versions, errors[]), inbound text / button / interactive replies, user_preferences, template status
and quality updates (from admin changes and from the timed pause fault, with no request arriving), phone-number
quality updates (FLAGGED / UNFLAGGED, THROUGHPUT_UPGRADE, messaging-limit changes, from admin changes and the
timed quality fault), account_alerts and account-level errors."""
from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import pytest

from tests.contract.graph_shapes import FIXTURES, assert_same_shape, load
from tests.support import TEST_APP_SECRET, TEST_TOKEN, WebhookRecorder

PNID = "100000000000001"
AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}
ADVISOR = "+919812345678"


def message(to: str, template: str = "daily_pack_v1", key: str | None = "2026-12-01:42") -> dict:
    body = {"messaging_product": "whatsapp", "to": to, "type": "template", "template": {
        "name": template, "language": {"code": "en"}, "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example/a.png"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": f"p{i}"} for i in range(3)]}]}}
    if key:
        body["biz_opaque_callback_data"] = key
    return body


@pytest.fixture
def recorder(sandbox):
    rec = WebhookRecorder()
    sandbox.configure(webhooks={"url": rec.url, "sent_delay_s": 0.02, "delivered_delay_s": 0.1, "read_delay_s": 0.2})
    yield rec
    sandbox.configure(webhooks={"url": ""})
    rec.stop()


def field_of(payload: dict) -> str:
    return payload["entry"][0]["changes"][0]["field"]


def value_of(payload: dict) -> dict:
    return payload["entry"][0]["changes"][0]["value"]


def wait_payload(rec: WebhookRecorder, predicate, timeout: float = 10.0) -> dict:
    found: list[dict] = []

    def check(r):
        found[:] = [p for p in r.payloads() if predicate(p)]
        return bool(found)

    assert rec.wait_for(check, timeout), f"no such webhook; got {[field_of(p) for p in rec.payloads()]}"
    return found[-1]


def of_field(field: str, **value_items):
    return lambda p: field_of(p) == field and all(value_of(p).get(k) == v for k, v in value_items.items())


def status_webhook(status: str, wamid: str):
    return lambda p: any(s["id"] == wamid and s["status"] == status for s in value_of(p).get("statuses", []))


def send(sandbox, to: str, **kw) -> str:
    r = httpx.post(f"{sandbox.url}/v21.0/{PNID}/messages", headers=AUTH, json=message(to, **kw))
    assert r.status_code == 200, r.text
    return r.json()["messages"][0]["id"]


def assert_shape(fixture_name: str, payload: dict, *also_by_type: str) -> None:
    """The sandbox's webhook has the fixture's shape (`also_by_type`: more keys compared by type only)."""
    fixture = load(fixture_name)
    assert "developers.facebook.com" in fixture["_source"]
    fixture["_by_type"] = [*fixture.get("_by_type", ()), *also_by_type]
    assert_same_shape(payload, fixture)


def signed(rec: WebhookRecorder, payload: dict) -> bool:
    import json

    for headers, body in rec.received:
        if json.loads(body) == payload:
            return headers["x-hub-signature-256"] == "sha256=" + hmac.new(
                TEST_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return False


def test_every_webhook_fixture_names_its_meta_source():
    names = sorted(p.name for p in FIXTURES.glob("webhook_*.json"))
    assert len(names) >= 20
    for name in names:
        assert "developers.facebook.com" in load(name)["_source"], name


# -- statuses -------------------------------------------------------------------------------------------------
def test_sent_delivered_read_statuses_carry_contacts_recipient_user_id_and_pricing(sandbox, recorder):
    sandbox.configure(webhooks={"read_rate": 1.0})
    wamid = send(sandbox, ADVISOR)
    sent = wait_payload(recorder, status_webhook("sent", wamid))
    delivered = wait_payload(recorder, status_webhook("delivered", wamid))
    read = wait_payload(recorder, status_webhook("read", wamid))
    assert_shape("webhook_status_sent.json", sent)
    assert_shape("webhook_status_delivered.json", delivered)
    assert_shape("webhook_status_read.json", read)  # pricing went with delivered ("one or the other")
    assert signed(recorder, sent)
    value = value_of(delivered)
    assert value["contacts"][0]["wa_id"] == value["statuses"][0]["recipient_id"] == ADVISOR.lstrip("+")
    assert value["contacts"][0]["user_id"] == value["statuses"][0]["recipient_user_id"]
    assert value["contacts"][0]["user_id"].startswith("IN.")  # ISO country, a dot, digits
    assert value["statuses"][0]["biz_opaque_callback_data"] == "2026-12-01:42"


def test_read_at_once_carries_the_pricing_the_skipped_delivered_would_have(sandbox, recorder):
    wamid = send(sandbox, "+91990000000" + "2")  # research digit 2: read at once, delivered skipped
    read = wait_payload(recorder, status_webhook("read", wamid))
    pricing = value_of(read)["statuses"][0].pop("pricing")
    assert pricing == {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "marketing"}
    assert_shape("webhook_status_read.json", read)


def test_webhooks_v23_and_older_still_carry_the_conversation(sandbox, recorder):
    sandbox.configure(webhooks={"version": "v23.0"})
    wamid = send(sandbox, ADVISOR)
    assert_shape("webhook_status_sent_v23.json", wait_payload(recorder, status_webhook("sent", wamid)))


@pytest.mark.parametrize("digit,code", [("8", 131050), ("3", 131026)])
def test_failed_by_webhook_research_outcomes_use_the_full_errors_shape(sandbox, recorder, digit, code):
    wamid = send(sandbox, "+91990000000" + digit)
    failed = wait_payload(recorder, status_webhook("failed", wamid))
    assert_shape("webhook_status_failed.json", failed, *(["code"] if code != 131050 else []))
    err = value_of(failed)["statuses"][0]["errors"][0]
    assert err["code"] == code and err["title"] == err["message"] and err["error_data"]["details"]
    assert "contacts" not in value_of(failed)  # omitted entirely for failed statuses


def test_pricing_carries_the_template_category_billed_once_per_message(sandbox, recorder):
    """The spend budget bills from `pricing` (include/delivery/budget.py): a UTILITY template's statuses say
    category utility, on sent and delivered only (read carries none when delivered did)."""
    sandbox.admin.post("/_sandbox/templates/daily_pack_v1", json={"language": "en", "category": "UTILITY"}
                       ).raise_for_status()
    sandbox.configure(webhooks={"read_rate": 1.0})
    wamid = send(sandbox, ADVISOR)
    sent = wait_payload(recorder, status_webhook("sent", wamid))
    assert_shape("webhook_status_sent_utility_pricing.json", sent)
    delivered = wait_payload(recorder, status_webhook("delivered", wamid))
    read = wait_payload(recorder, status_webhook("read", wamid))
    assert value_of(delivered)["statuses"][0]["pricing"]["category"] == "utility"
    assert "pricing" not in value_of(read)["statuses"][0]


# -- inbound messages -----------------------------------------------------------------------------------------
def test_inbound_text(sandbox, recorder):
    sandbox.admin.post("/_sandbox/inbound", json={"from": ADVISOR, "text": "STOP"}).raise_for_status()
    payload = wait_payload(recorder, of_field("messages"))
    assert_shape("webhook_inbound_text.json", payload)
    msg = value_of(payload)["messages"][0]
    assert msg["text"]["body"] == "STOP" and msg["from"] == ADVISOR.lstrip("+")


def test_inbound_quick_reply_button_replies_to_the_template_message(sandbox, recorder):
    wamid = send(sandbox, ADVISOR)
    sandbox.admin.post("/_sandbox/inbound", json={"from": ADVISOR, "type": "button", "text": "Stop promotions"}
                       ).raise_for_status()
    payload = wait_payload(recorder, lambda p: value_of(p).get("messages", [{}])[0].get("type") == "button")
    assert_shape("webhook_inbound_button.json", payload)
    assert value_of(payload)["messages"][0]["context"]["id"] == wamid


def test_inbound_interactive_button_and_list_replies(sandbox, recorder):
    sandbox.admin.post("/_sandbox/inbound", json={"from": ADVISOR, "type": "interactive", "text": "Stop promotions",
                                                  "id": "stop-promotions"}).raise_for_status()
    sandbox.admin.post("/_sandbox/inbound", json={"from": ADVISOR, "type": "interactive", "text": "Unsubscribe",
                                                  "id": "unsub", "interactive_type": "list_reply",
                                                  "description": "No more daily packs"}).raise_for_status()

    def interactive(kind):
        return lambda p: value_of(p).get("messages", [{}])[0].get("interactive", {}).get("type") == kind

    assert_shape("webhook_inbound_interactive.json", wait_payload(recorder, interactive("button_reply")))
    assert_shape("webhook_inbound_list_reply.json", wait_payload(recorder, interactive("list_reply")))


def test_inbound_refuses_types_it_does_not_model(sandbox):
    r = sandbox.admin.post("/_sandbox/inbound", json={"from": ADVISOR, "type": "image", "text": "x"})
    assert r.status_code == 400


def test_user_preferences(sandbox, recorder):
    sandbox.admin.post("/_sandbox/user_preferences", json={"wa_id": ADVISOR, "value": "stop"}).raise_for_status()
    assert_shape("webhook_user_preferences.json", wait_payload(recorder, of_field("user_preferences")))


# -- templates ------------------------------------------------------------------------------------------------
def test_template_status_changes_emit_message_template_status_update(sandbox, recorder):
    admin = sandbox.admin
    admin.post("/_sandbox/templates/daily_pack_v1", json={"status": "PAUSED"}).raise_for_status()
    paused = wait_payload(recorder, of_field("message_template_status_update", event="PAUSED"))
    assert_shape("webhook_template_status_paused.json", paused)
    assert value_of(paused)["other_info"]["title"] == "FIRST_PAUSE"
    assert value_of(paused)["message_template_name"] == "daily_pack_v1"
    assert value_of(paused)["message_template_language"] == "en"
    assert signed(recorder, paused)
    admin.post("/_sandbox/templates/daily_pack_v1", json={"status": "APPROVED"}).raise_for_status()
    assert_shape("webhook_template_status_unpaused.json",
                 wait_payload(recorder, of_field("message_template_status_update", event="APPROVED")))
    admin.post("/_sandbox/templates/daily_pack_v1", json={"status": "PAUSED"}).raise_for_status()
    assert recorder.wait_for(lambda r: [value_of(p)["other_info"]["title"] for p in r.payloads()
                                        if value_of(p).get("event") == "PAUSED"] == ["FIRST_PAUSE", "SECOND_PAUSE"])
    admin.post("/_sandbox/templates/daily_pack_v2", json={"status": "DISABLED"}).raise_for_status()
    assert_shape("webhook_template_status_disabled.json",
                 wait_payload(recorder, of_field("message_template_status_update", event="DISABLED")))
    admin.post("/_sandbox/templates/daily_pack_v3", json={"language": "en", "status": "REJECTED",
                                                          "reason": "INVALID_FORMAT"}).raise_for_status()
    assert_shape("webhook_template_status_rejected.json",
                 wait_payload(recorder, of_field("message_template_status_update", event="REJECTED")))
    # The API agrees with the webhook: a paused template is refused with 132015.
    r = httpx.post(f"{sandbox.url}/v21.0/{PNID}/messages", headers=AUTH, json=message(ADVISOR))
    assert r.json()["error"]["code"] == 132015


def test_an_approval_after_review_is_the_documented_approved_event(sandbox, recorder):
    sandbox.admin.post("/_sandbox/templates/daily_pack_v3", json={"language": "en", "status": "PENDING"}
                       ).raise_for_status()
    sandbox.admin.post("/_sandbox/templates/daily_pack_v3", json={"status": "APPROVED"}).raise_for_status()
    approved = wait_payload(recorder, of_field("message_template_status_update", event="APPROVED"))
    assert_shape("webhook_template_status_approved.json", approved)


def test_template_quality_change_emits_message_template_quality_update(sandbox, recorder):
    sandbox.admin.post("/_sandbox/templates/daily_pack_v1", json={"quality_score": "YELLOW"}).raise_for_status()
    assert_shape("webhook_template_quality.json", wait_payload(recorder, of_field("message_template_quality_update")))
    assert sandbox.admin.post("/_sandbox/templates/daily_pack_v1", json={"quality_score": "PURPLE"}).status_code == 400
    assert sandbox.admin.post("/_sandbox/templates/daily_pack_v1", json={"status": "SLEEPY"}).status_code == 400


# -- phone numbers --------------------------------------------------------------------------------------------
def test_number_quality_and_throughput_changes_emit_phone_number_quality_update(sandbox, recorder):
    admin = sandbox.admin
    admin.post(f"/_sandbox/numbers/{PNID}", json={"quality_rating": "RED"}).raise_for_status()
    flagged = wait_payload(recorder, of_field("phone_number_quality_update", event="FLAGGED"))
    assert_shape("webhook_phone_quality_flagged.json", flagged)
    assert value_of(flagged)["display_phone_number"] == "918000000001"
    admin.post(f"/_sandbox/numbers/{PNID}", json={"quality_rating": "GREEN"}).raise_for_status()
    assert_shape("webhook_phone_quality_unflagged.json",
                 wait_payload(recorder, of_field("phone_number_quality_update", event="UNFLAGGED")))
    admin.post(f"/_sandbox/numbers/{PNID}", json={"throughput_level": "HIGH"}).raise_for_status()
    assert_shape("webhook_phone_quality_throughput.json",
                 wait_payload(recorder, of_field("phone_number_quality_update", event="THROUGHPUT_UPGRADE")))
    # GREEN -> YELLOW has no documented webhook: none is sent.
    admin.post(f"/_sandbox/numbers/{PNID}", json={"quality_rating": "YELLOW"}).raise_for_status()
    sandbox.wait_webhooks_drained()
    assert sum(field_of(p) == "phone_number_quality_update" for p in recorder.payloads()) == 3


def test_a_messaging_limit_change_emits_upgrade_with_the_legacy_fields_when_asked(sandbox, recorder):
    sandbox.configure(messaging_tier="TIER_2K")  # DOWNGRADE for each of the five numbers
    assert recorder.wait_for(lambda r: sum(value_of(p).get("event") == "DOWNGRADE" for p in r.payloads()) == 5)
    down = [p for p in recorder.payloads() if value_of(p).get("event") == "DOWNGRADE"][0]
    assert "current_limit" not in value_of(down) and value_of(down)["max_daily_conversations_per_business"] == "TIER_2K"
    sandbox.configure(webhooks={"legacy_limit_fields": True}, messaging_tier="TIER_10K")
    up = wait_payload(recorder, of_field("phone_number_quality_update", event="UPGRADE"))
    assert_shape("webhook_phone_quality_limit_legacy.json", up)


# -- timed faults emit at the time they fire, with no request ---------------------------------------------------
def test_timed_faults_emit_their_webhooks_when_due_without_any_request(sandbox, recorder):
    set_at = time.time()
    sandbox.faults(template_pause_in_s={"daily_pack_v1": 0.5}, quality_red_in_s={PNID: 0.8})
    paused = wait_payload(recorder, of_field("message_template_status_update", event="PAUSED"), timeout=5)
    flagged = wait_payload(recorder, of_field("phone_number_quality_update", event="FLAGGED"), timeout=5)
    assert_shape("webhook_template_status_paused.json", paused)
    assert_shape("webhook_phone_quality_flagged.json", flagged)
    assert int(set_at) <= paused["entry"][0]["time"] <= int(set_at + 0.5) + 1  # stamped when the fault was due
    assert sandbox.admin.get("/_sandbox/faults").json()["template_pause_at"] == {}
    assert httpx.get(f"{sandbox.url}/v21.0/{PNID}", headers=AUTH).json()["quality_rating"] == "RED"
    # Fired once: the requests that also apply due faults find nothing left to fire.
    r = httpx.post(f"{sandbox.url}/v21.0/{PNID}/messages", headers=AUTH, json=message(ADVISOR))
    assert r.json()["error"]["code"] == 132015
    sandbox.wait_webhooks_drained()
    assert sum(field_of(p) == "message_template_status_update" for p in recorder.payloads()) == 1


# -- account level --------------------------------------------------------------------------------------------
def test_account_level_error_and_account_alert(sandbox, recorder):
    sandbox.admin.post("/_sandbox/account_errors", json={}).raise_for_status()
    sandbox.admin.post("/_sandbox/account_alerts", json={}).raise_for_status()
    assert_shape("webhook_account_error.json",
                 wait_payload(recorder, lambda p: "errors" in value_of(p) and field_of(p) == "messages"))
    assert_shape("webhook_account_alerts.json", wait_payload(recorder, of_field("account_alerts")))
