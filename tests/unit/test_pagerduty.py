"""include/paging/pagerduty.py, without a network: severity mapping, the event body, the events URL from the
connection's host, X-PagerDuty-Signature verification and reading an incident.acknowledged webhook."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from include.paging import pagerduty as pd
from tests.contract.graph_shapes import body_of, load

BODY = b'{"event":{"event_type":"incident.acknowledged"}}'


def v1(body: bytes, secret: str) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(("ours", "theirs"), [("P0", "critical"), ("P1", "error"), ("P2", "warning"),
                                              ("info", "info")])
def test_severity_mapping(ours, theirs):
    assert pd.pagerduty_severity(ours) == theirs


@pytest.mark.parametrize("unknown", ["P3", "critical", "", "p0"])
def test_unknown_severity_is_refused(unknown):
    with pytest.raises(ValueError, match="unknown severity"):
        pd.pagerduty_severity(unknown)


def test_every_alerting_severity_has_a_pagerduty_severity():
    from include.core.alerting import Severity

    assert {pd.pagerduty_severity(s.value) for s in Severity} <= set(pd.PAGERDUTY_SEVERITIES)


def test_trigger_body_has_the_documented_fields():
    event = pd.build_event("trigger", "k" * 32, "2026-12-01:fanout-sla", "SLA missed", "P0",
                           custom_details={"accepted": "97.1%"}, links=[{"href": "https://x.example/r", "text": "r"}])
    assert event == {"routing_key": "k" * 32, "event_action": "trigger", "dedup_key": "2026-12-01:fanout-sla",
                     "payload": {"summary": "SLA missed", "severity": "critical", "source": "advisor-content-delivery",
                                 "custom_details": {"accepted": "97.1%"}},
                     "links": [{"href": "https://x.example/r", "text": "r"}]}


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve_carry_only_the_key(action):
    # As PagerDuty's own acknowledge / resolve examples (tests/contract/fixtures/pagerduty_event_<action>.json).
    event = pd.build_event(action, "k" * 32, "dk")
    assert set(event) == set(body_of(load(f"pagerduty_event_{action}.json")))


@pytest.mark.parametrize(("args", "message"), [
    (("page", "k" * 32, "dk", "s"), "event action"),
    (("trigger", "k" * 32, "", "s"), "dedup_key is required"),
    (("trigger", "k" * 32, "dk", None), "needs a summary"),
    (("trigger", "k" * 32, "dk", "s", "urgent"), "unknown severity"),
])
def test_bad_events_are_refused_before_sending(args, message):
    with pytest.raises(ValueError, match=message):
        pd.build_event(*args)


@pytest.mark.parametrize(("host", "url"), [
    (None, "https://events.pagerduty.com/v2/enqueue"),
    ("", "https://events.pagerduty.com/v2/enqueue"),
    ("events.eu.pagerduty.com", "https://events.eu.pagerduty.com/v2/enqueue"),
    ("https://events.pagerduty.com/", "https://events.pagerduty.com/v2/enqueue"),
    ("http://127.0.0.1:8090", "http://127.0.0.1:8090/v2/enqueue"),
    ("http://localhost:8090", "http://localhost:8090/v2/enqueue"),
])
def test_events_url_from_the_connection_host(host, url):
    assert pd._events_url(host) == url


@pytest.mark.parametrize("host", ["http://events.pagerduty.com", "http://10.0.0.5:8090", "ftp://x"])
def test_routing_key_never_goes_over_plain_http_off_the_machine(host):
    with pytest.raises(pd.PagingError):
        pd._events_url(host)


# -- X-PagerDuty-Signature ---------------------------------------------------------------------------------
def test_signature_of_the_right_secret_is_accepted():
    assert pd.verify_pagerduty_signature(BODY, v1(BODY, "s3cret"), ["s3cret"])


def test_signature_with_a_wrong_secret_is_refused():
    assert not pd.verify_pagerduty_signature(BODY, v1(BODY, "other"), ["s3cret"])


def test_signature_of_another_body_is_refused():
    assert not pd.verify_pagerduty_signature(BODY + b" ", v1(BODY, "s3cret"), ["s3cret"])


def test_one_matching_signature_among_several_is_enough():
    # During a secret rotation PagerDuty sends one v1= per secret, comma separated (optionally spaced).
    header = f"{v1(BODY, 'old')}, {v1(BODY, 'new')}"
    assert pd.verify_pagerduty_signature(BODY, header, ["new"])
    assert pd.verify_pagerduty_signature(BODY, header, ["old"])
    assert pd.verify_pagerduty_signature(BODY, v1(BODY, "new"), ["old", "new"])
    assert not pd.verify_pagerduty_signature(BODY, header, ["neither"])


@pytest.mark.parametrize("header", ["", "v1=", "v0=" + "0" * 64, "sha256=abc", ",,,"])
def test_missing_or_foreign_signatures_are_refused(header):
    assert not pd.verify_pagerduty_signature(BODY, header, ["s3cret"])


def test_only_v1_signatures_count():
    digest = v1(BODY, "s3cret")[3:]
    assert not pd.verify_pagerduty_signature(BODY, f"v2={digest}", ["s3cret"])
    assert pd.verify_pagerduty_signature(BODY, f"v2={digest},v1={digest}", ["s3cret"])


def test_no_secret_verifies_nothing():
    assert not pd.verify_pagerduty_signature(BODY, v1(BODY, ""), [])
    assert not pd.verify_pagerduty_signature(BODY, v1(BODY, ""), [""])


# -- incident.acknowledged ----------------------------------------------------------------------------------
def documented_acknowledgement() -> dict:
    return body_of(load("pagerduty_webhook_incident_acknowledged.json"))


def test_parse_the_documented_acknowledgement():
    ack = pd.parse_acknowledgement(json.dumps(documented_acknowledgement()).encode())
    assert ack == {"incident_key": "d3640fbd41094207a1c11e58e46b1662", "incident_id": "PGR0VU2",
                   "incident_number": 2, "title": "A little bump in the road", "status": "acknowledged",
                   "acknowledged_by": "Tenex Engineer", "acknowledged_by_id": "PLH1HKV",
                   "acknowledged_at": datetime(2020, 10, 2, 18, 45, 22, 169000, tzinfo=UTC),
                   "event_id": "5ac64822-4adc-4fda-ade0-410becf0de4f",
                   "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2"}


def test_parse_accepts_text_and_a_decoded_object():
    doc = documented_acknowledgement()
    assert pd.parse_acknowledgement(json.dumps(doc)) == pd.parse_acknowledgement(doc)


@pytest.mark.parametrize("event_type", ["incident.triggered", "incident.resolved", "incident.priority_updated",
                                        "service.updated"])
def test_other_events_are_not_acknowledgements(event_type):
    doc = documented_acknowledgement()
    doc["event"]["event_type"] = event_type
    assert pd.parse_acknowledgement(doc) is None


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"messages": []}', b'{"event": {"id": "x"}}',
                                  b'{"event": {"event_type": "incident.acknowledged", "data": null}}',
                                  b'{"event": {"event_type": "incident.acknowledged", "data": {}, '
                                  b'"occurred_at": "yesterday"}}'])
def test_malformed_webhooks_raise(body):
    with pytest.raises(ValueError):
        pd.parse_acknowledgement(body)


# -- delivery rules (a fake PagerDuty; the real sandbox is in tests/e2e/test_pagerduty_paging.py) ----------------
@pytest.fixture
def fake_pagerduty(monkeypatch):
    """Answers queued (status, body) pairs (or an exception) and records each request's JSON."""
    import httpx

    answers: list = []
    received: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(json.loads(request.content))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    real_client = httpx.Client
    monkeypatch.setattr(httpx, "Client", lambda **kw: real_client(transport=httpx.MockTransport(handler), **kw))
    monkeypatch.setattr(pd, "_routing_key_and_url",
                        lambda key, conn_id: (key or "c" * 32, "https://events.pagerduty.com/v2/enqueue"))
    monkeypatch.setattr(pd, "RETRY_DELAYS_S", (0.0, 0.0, 0.0))
    return answers, received


ACCEPTED = (202, {"status": "success", "message": "Event processed", "dedup_key": "dk"})


def test_429_and_5xx_are_retried_with_the_same_event(fake_pagerduty):
    import httpx

    answers, received = fake_pagerduty
    answers += [(429, None), (503, None), httpx.ConnectError("refused"), ACCEPTED]
    assert pd.send_event("trigger", "r" * 32, "dk", "SLA missed", "P0") == ACCEPTED[1]
    assert len(received) == 4 and all(r == received[0] for r in received)
    assert received[0]["dedup_key"] == "dk"


def test_a_400_is_not_retried_and_names_the_event(fake_pagerduty):
    answers, received = fake_pagerduty
    answers.append((400, {"status": "invalid event", "message": "Event object is invalid",
                          "errors": ["'payload.severity' is invalid"]}))
    with pytest.raises(pd.PagerDutyEventRejected) as exc:
        pd.send_event("trigger", "r" * 32, "2026-12-01:sla", "SLA missed", "critical")
    assert len(received) == 1
    assert exc.value.status == 400 and exc.value.errors == ["'payload.severity' is invalid"]
    message = str(exc.value)
    assert "trigger" in message and "'2026-12-01:sla'" in message and "payload.severity" in message
    assert "r" * 32 not in message   # only the key's last characters


def test_retries_end_with_unavailable(fake_pagerduty):
    answers, received = fake_pagerduty
    answers += [(500, None)] * 4
    with pytest.raises(pd.PagerDutyUnavailable, match="HTTP 500"):
        pd.send_event("resolve", "r" * 32, "dk")
    assert len(received) == 1 + len(pd.RETRY_DELAYS_S)


def test_an_empty_routing_key_uses_the_connection(fake_pagerduty):
    answers, received = fake_pagerduty
    answers.append(ACCEPTED)
    pd.send_event("acknowledge", "", "dk")
    assert received == [{"routing_key": "c" * 32, "event_action": "acknowledge", "dedup_key": "dk"}]
