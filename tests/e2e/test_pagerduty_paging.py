"""Paging end to end: include/paging/pagerduty.py through the `pagerduty_events` Airflow connection to the real
sandbox process (its PagerDuty Events API v2), and the sandbox's signed V3 webhook back to a local receiver."""
from __future__ import annotations

import json

import pytest

from include.paging import pagerduty as pd
from tests.support import WebhookRecorder

ROUTING_KEY = "0123456789abcdef0123456789abcdef"       # the connection's (default) routing key
ONCALL_KEY = "fedcba9876543210fedcba9876543210"        # a role's own service, given by the caller


@pytest.fixture
def paging(sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_PAGERDUTY_EVENTS", json.dumps({
        "conn_type": "pagerduty_events", "host": sandbox.url, "password": ROUTING_KEY}))
    monkeypatch.setattr(pd, "RETRY_DELAYS_S", (0.05, 0.1, 0.2))
    return sandbox


def incidents(sandbox) -> list[dict]:
    return sandbox.admin.get("/_sandbox/pagerduty/incidents").json()["incidents"]


def test_trigger_acknowledge_resolve_with_one_dedup_key(paging):
    key = "2026-12-01:delivery_fanout:sla"
    body = pd.send_event("trigger", ONCALL_KEY, key, "Delivery fan-out for 2026-12-01: SLA missed", "P0",
                         custom_details={"accepted": "97.1%"}, links=[{"href": "https://ops.example/r", "text": "run"}])
    assert body == {"status": "success", "message": "Event processed", "dedup_key": key}
    [incident] = incidents(paging)
    assert (incident["routing_key"], incident["dedup_key"], incident["status"], incident["severity"]) == \
        (ONCALL_KEY, key, "triggered", "critical")
    [received] = paging.pagerduty_events()
    assert received["body"]["payload"] == {"summary": "Delivery fan-out for 2026-12-01: SLA missed",
                                           "severity": "critical", "source": "advisor-content-delivery",
                                           "custom_details": {"accepted": "97.1%"}}

    pd.send_event("acknowledge", ONCALL_KEY, key)
    assert incidents(paging)[0]["status"] == "acknowledged"
    pd.send_event("resolve", ONCALL_KEY, key)
    [incident] = incidents(paging)
    assert incident["status"] == "resolved"
    assert [e["event_action"] for e in incident["events"]] == ["trigger", "acknowledge", "resolve"]


def test_the_connection_routing_key_is_the_default(paging):
    pd.send_event("trigger", "", "dk-default", "Pre-delivery check: P1", "P1")
    [incident] = incidents(paging)
    assert (incident["routing_key"], incident["severity"]) == (ROUTING_KEY, "error")


def test_a_retried_trigger_after_429_is_one_incident(paging):
    paging.faults(pagerduty_429_next=2)
    key = "2026-12-01:whatsapp:number-red"
    pd.send_event("trigger", ONCALL_KEY, key, "Number +918000000001 quality RED", "P0")
    assert [(e["status"], e["outcome"]) for e in paging.pagerduty_events()] == [
        (429, "throttled"), (429, "throttled"), (202, "incident_opened")]
    # The same trigger sent again (a task retry, a second caller) stays on the same PagerDuty incident.
    pd.send_event("trigger", ONCALL_KEY, key, "Number +918000000001 quality RED", "P0")
    assert paging.pagerduty_events()[-1]["outcome"] == "deduplicated"
    [incident] = incidents(paging)
    assert incident["dedup_key"] == key and len(incident["events"]) == 2


def test_5xx_is_retried_then_reported_unavailable(paging):
    paging.faults(pagerduty_5xx_next=1)
    pd.send_event("trigger", ONCALL_KEY, "dk-5xx", "x", "P2")
    assert [e["status"] for e in paging.pagerduty_events()] == [500, 202]

    paging.faults(pagerduty_5xx_next=10)
    with pytest.raises(pd.PagerDutyUnavailable, match=r"trigger event for dedup_key 'dk-down'.*HTTP 500"):
        pd.send_event("trigger", ONCALL_KEY, "dk-down", "x", "P2")
    assert len(incidents(paging)) == 1


def test_a_400_raises_at_once_naming_the_event(paging):
    with pytest.raises(pd.PagerDutyEventRejected, match=r"trigger event for dedup_key 'dk-long'.*payload.summary"):
        pd.send_event("trigger", ONCALL_KEY, "dk-long", "x" * 1025, "P0")
    assert [e["status"] for e in paging.pagerduty_events()] == [400]
    assert incidents(paging) == []


def test_acknowledge_in_pagerduty_posts_a_signed_webhook(paging):
    recorder = WebhookRecorder()
    try:
        # Two signing secrets, as during a rotation: PagerDuty sends one v1= signature per secret.
        paging.configure(pagerduty_webhook_url=recorder.url, pagerduty_webhook_secrets=["old-secret", "new-secret"])
        key = "2026-12-01:pre_delivery_check"
        pd.send_event("trigger", ONCALL_KEY, key, "Pre-delivery check for 2026-12-01: 1 check failed", "P0")
        resp = paging.admin.post("/_sandbox/pagerduty/acknowledge",
                                 json={"dedup_key": key, "user": "Asha Rao", "user_id": "PASHA01"})
        assert resp.status_code == 200, resp.text
        assert recorder.wait_for(lambda r: len(r.received) == 1)
        headers, body = recorder.received[0]
        header = headers["x-pagerduty-signature"]
        assert header.count("v1=") == 2
        assert pd.verify_pagerduty_signature(body, header, ["new-secret"])
        assert pd.verify_pagerduty_signature(body, header, ["old-secret"])
        assert not pd.verify_pagerduty_signature(body, header, ["someone-elses-secret"])
        assert not pd.verify_pagerduty_signature(body + b"\n", header, ["new-secret"])

        ack = pd.parse_acknowledgement(body)
        assert ack is not None
        assert (ack["incident_key"], ack["acknowledged_by"], ack["acknowledged_by_id"], ack["status"]) == \
            (key, "Asha Rao", "PASHA01", "acknowledged")
        assert ack["acknowledged_at"].tzinfo is not None
        [incident] = incidents(paging)
        assert (incident["status"], incident["acknowledged_by"], incident["id"]) == \
            ("acknowledged", "Asha Rao", ack["incident_id"])
    finally:
        recorder.stop()
