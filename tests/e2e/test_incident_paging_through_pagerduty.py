"""Incident response end to end with what PagerDuty would give: a P0 delivery-rate alert opens an incident, the
escalation pages the roles the impact matrix names through the real Events API v2 (the sandbox's), a second run
pages nobody twice, a person acknowledges in PagerDuty, and the signed V3 webhook lands on the timeline and stops
the time ladder."""
from __future__ import annotations

import datetime as dt
import json
import threading

import pytest

from tests.support import free_port, wait_until
from tests.world import rows, scalar

pytestmark = pytest.mark.e2e

WEBHOOK_SECRET = "pd-webhook-secret-for-tests"


@pytest.fixture
def pagerduty(app_db, sandbox, monkeypatch):
    """The roster seeded, the Events API connection at the sandbox, and our acknowledgement receiver served."""
    import uvicorn

    from devtools.demo_world import seed_oncall_roster
    from include.incidents.pagerduty_acks import create_app

    with app_db.begin() as conn:
        seed_oncall_roster(conn)
    monkeypatch.setenv("AIRFLOW_CONN_PAGERDUTY_EVENTS", json.dumps(
        {"conn_type": "pagerduty_events", "host": sandbox.url, "extra": {"webhook_secrets": [WEBHOOK_SECRET]}}))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(lambda: app_db), host="127.0.0.1", port=port,
                                          log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, what="the PagerDuty webhook receiver started")
    url = f"http://127.0.0.1:{port}/webhook"
    sandbox.configure(pagerduty_webhook_url=url, pagerduty_webhook_secrets=[WEBHOOK_SECRET])
    yield url
    server.should_exit = True
    thread.join(5)


def test_a_delivery_rate_p0_pages_the_matrix_once_and_a_pagerduty_ack_stops_the_ladder(app_db, sandbox, pagerduty):
    from devtools.demo_world import oncall_routing_key
    from include.core.alerting import Alert, RunRef, Severity, post
    from include.incidents.paging import escalate

    day = dt.date(2026, 12, 1)
    post(Alert(Severity.P0, f"Delivery rate 87.00% for {day} at 06:15",
               {"business_date": str(day), "delivery_rate": 0.87}, RunRef("post_delivery_report", "x", "r1")))
    (incident,) = rows(app_db, "SELECT incident_id, severity, category FROM incidents")
    assert (incident.severity, incident.category) == ("P0", "delivery_rate")

    now = dt.datetime.now(dt.UTC)
    escalate(app_db, now)
    triggers = [e for e in sandbox.pagerduty_events() if e["body"].get("event_action") == "trigger"]
    paged = {e["body"]["dedup_key"]: e["body"]["routing_key"] for e in triggers}
    # At once: the primary (time ladder), the engineering manager (< 95%) and the CTO (< 90%).
    expected = {role: oncall_routing_key(role) for role in ("primary", "engineering_manager", "cto")}
    assert paged == {f"incident-{incident.incident_id}-{role}": key for role, key in expected.items()}
    assert all(e["status"] == 202 for e in triggers)

    escalate(app_db, now)  # the next run (or a retry): nothing is paged twice
    assert len([e for e in sandbox.pagerduty_events() if e["body"].get("event_action") == "trigger"]) == 3

    # The primary acknowledges in PagerDuty; its signed webhook reaches our receiver.
    r = sandbox.admin.post("/_sandbox/pagerduty/acknowledge", json={
        "dedup_key": f"incident-{incident.incident_id}-primary", "user": "Asha (primary)"})
    assert r.status_code == 200, r.text
    wait_until(lambda: scalar(app_db, "SELECT acknowledged_at IS NOT NULL FROM incidents"), 10,
               what="the acknowledgement on the incident")
    ack = rows(app_db, "SELECT actor, text FROM incident_timeline WHERE kind = 'ack'")
    assert len(ack) == 1 and "Asha (primary)" in ack[0].actor and "via pagerduty" in ack[0].text

    # An hour later: no secondary, no time-ladder CTO page (acknowledged); the impact ladder goes on (CEO < 90%).
    escalate(app_db, now + dt.timedelta(hours=1, minutes=1))
    later = {e["body"]["dedup_key"] for e in sandbox.pagerduty_events() if e["body"].get("event_action") == "trigger"}
    assert f"incident-{incident.incident_id}-secondary" not in later
    assert f"incident-{incident.incident_id}-ceo" in later
    assert scalar(app_db, "SELECT count(*) FROM incident_pages WHERE incident_id = :i AND role = 'cto'",
                  i=incident.incident_id) == 1


def test_a_forged_acknowledgement_is_refused(app_db, sandbox, pagerduty):
    import httpx

    url = pagerduty
    body = json.dumps({"event": {"event_type": "incident.acknowledged", "data": {}}}).encode()
    r = httpx.post(url, content=body, headers={"X-PagerDuty-Signature": "v1=" + "0" * 64})
    assert r.status_code == 401
