"""Contract: the sandbox's PagerDuty answers as PagerDuty documents.

Fixtures (tests/contract/fixtures/pagerduty_*.json, each naming its source page): the documented trigger /
acknowledge / resolve request examples, the 202 and 400 bodies of POST /v2/enqueue, and a V3 `incident.acknowledged`
webhook. The real sandbox (a separate process, as `make sandbox` runs it) gets the requests; its answers are
compared with tests/contract/graph_shapes.py (same keys and types, equal values except ids, timestamps and the
fixture's `_by_type` keys)."""
from __future__ import annotations

import copy
import json

import httpx
import pytest

from tests.contract.graph_shapes import assert_same_shape, body_of, load
from tests.support import WebhookRecorder

ROUTING_KEY = "e93facc04764012d7bfb002500d5d1a6"   # 32 characters, as an integration key


def documented(name: str, routing_key: str | None = ROUTING_KEY) -> dict:
    event = copy.deepcopy(body_of(load(f"pagerduty_event_{name}.json")))
    if routing_key is not None:
        event["routing_key"] = routing_key
    return event


def enqueue(sandbox, event) -> httpx.Response:
    content = event if isinstance(event, bytes) else json.dumps(event).encode()
    return httpx.post(f"{sandbox.url}/v2/enqueue", content=content, headers={"Content-Type": "application/json"},
                      timeout=10)


def incidents(sandbox) -> list[dict]:
    return sandbox.admin.get("/_sandbox/pagerduty/incidents").json()["incidents"]


def assert_accepted(resp: httpx.Response) -> dict:
    fixture = load("pagerduty_enqueue_accepted.json")
    assert resp.status_code == fixture["_http_status"], resp.text
    assert_same_shape(resp.json(), fixture)
    return resp.json()


def assert_invalid(resp: httpx.Response) -> list[str]:
    fixture = load("pagerduty_enqueue_invalid.json")
    assert resp.status_code == fixture["_http_status"], resp.text
    assert_same_shape(resp.json(), fixture)
    assert resp.json()["errors"] and all(isinstance(e, str) for e in resp.json()["errors"])
    return resp.json()["errors"]


def test_documented_trigger_with_its_sample_key_gets_the_documented_400(sandbox):
    # PagerDuty's own example uses routing_key "samplekeyhere" (13 characters): its documented 400 says exactly why.
    resp = enqueue(sandbox, documented("trigger", routing_key=None))
    assert assert_invalid(resp) == body_of(load("pagerduty_enqueue_invalid.json"))["errors"]
    assert incidents(sandbox) == []
    assert [e["outcome"] for e in sandbox.pagerduty_events()] == ["invalid"]


def test_trigger_acknowledge_resolve(sandbox):
    trigger = documented("trigger")
    assert assert_accepted(enqueue(sandbox, trigger))["dedup_key"] == "samplekeyhere"
    [incident] = incidents(sandbox)
    assert (incident["status"], incident["dedup_key"], incident["title"], incident["severity"]) == \
        ("triggered", "samplekeyhere", trigger["payload"]["summary"], "info")

    ack = documented("acknowledge") | {"dedup_key": "samplekeyhere"}
    assert assert_accepted(enqueue(sandbox, ack))["dedup_key"] == "samplekeyhere"
    assert incidents(sandbox)[0]["status"] == "acknowledged"

    resolve = documented("resolve") | {"dedup_key": "samplekeyhere"}
    assert assert_accepted(enqueue(sandbox, resolve))["dedup_key"] == "samplekeyhere"
    [incident] = incidents(sandbox)
    assert incident["status"] == "resolved"
    assert [e["event_action"] for e in incident["events"]] == ["trigger", "acknowledge", "resolve"]
    assert [(e["status"], e["outcome"]) for e in sandbox.pagerduty_events()] == [
        (202, "incident_opened"), (202, "acknowledged"), (202, "resolved")]


def test_a_trigger_after_resolve_opens_a_new_incident(sandbox):
    trigger = documented("trigger")
    assert_accepted(enqueue(sandbox, trigger))
    assert_accepted(enqueue(sandbox, documented("resolve") | {"dedup_key": "samplekeyhere"}))
    assert_accepted(enqueue(sandbox, trigger))
    assert [i["status"] for i in incidents(sandbox)] == ["resolved", "triggered"]


def test_acknowledge_of_an_unknown_key_is_accepted_and_dropped(sandbox):
    # PagerDuty accepts the event (202) and drops it: there is no open alert for the key.
    assert_accepted(enqueue(sandbox, documented("acknowledge")))
    assert incidents(sandbox) == []
    assert sandbox.pagerduty_events()[0]["outcome"] == "dropped"


def test_trigger_without_dedup_key_gets_a_generated_one(sandbox):
    event = documented("trigger")
    del event["dedup_key"]
    first = assert_accepted(enqueue(sandbox, event))["dedup_key"]
    second = assert_accepted(enqueue(sandbox, event))["dedup_key"]
    assert first != second and len(first) == 32
    assert len(incidents(sandbox)) == 2   # "a trigger event sent without a dedup_key will always generate a new alert"


def test_same_dedup_key_is_one_incident(sandbox):
    assert_accepted(enqueue(sandbox, documented("trigger")))
    assert_accepted(enqueue(sandbox, documented("trigger")))
    assert len(incidents(sandbox)) == 1
    assert [e["outcome"] for e in sandbox.pagerduty_events()] == ["incident_opened", "deduplicated"]


def _without(event: dict, *path: str) -> dict:
    event = copy.deepcopy(event)
    target = event
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return event


@pytest.mark.parametrize(("mutate", "mentions"), [
    (lambda e: _without(e, "routing_key"), "'routing_key' is missing"),
    (lambda e: e | {"routing_key": "x" * 33}, "Length of 'routing_key' is incorrect (should be 32 characters)"),
    (lambda e: _without(e, "event_action"), "'event_action' is missing"),
    (lambda e: e | {"event_action": "escalate"}, "'event_action' is invalid"),
    (lambda e: _without(e, "payload"), "'payload' is missing"),
    (lambda e: _without(e, "payload", "summary"), "'payload.summary' is missing"),
    (lambda e: _without(e, "payload", "source"), "'payload.source' is missing"),
    (lambda e: e | {"payload": e["payload"] | {"severity": "P0"}}, "'payload.severity' is invalid"),
    (lambda e: e | {"payload": e["payload"] | {"severity": "CRITICAL"}}, "'payload.severity' is invalid"),
    (lambda e: e | {"payload": e["payload"] | {"summary": "x" * 1025}},
     "Length of 'payload.summary' is too long (max 1024 characters)"),
    (lambda e: e | {"payload": e["payload"] | {"timestamp": "yesterday"}}, "'payload.timestamp'"),
    (lambda e: e | {"dedup_key": "k" * 256}, "Length of 'dedup_key' is too long"),
    (lambda e: e | {"links": [{"text": "no href"}]}, "'links[0].href'"),
    (lambda e: e | {"images": "https://x.example/a.png"}, "'images' must be an array"),
])
def test_invalid_trigger_is_400_with_errors(sandbox, mutate, mentions):
    errors = assert_invalid(enqueue(sandbox, mutate(documented("trigger"))))
    assert any(mentions in e for e in errors), errors
    assert incidents(sandbox) == []


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve_need_a_dedup_key(sandbox, action):
    errors = assert_invalid(enqueue(sandbox, _without(documented(action), "dedup_key")))
    assert any("'dedup_key' is missing" in e for e in errors), errors


def test_several_errors_are_listed_together(sandbox):
    event = {"routing_key": "short", "event_action": "trigger", "payload": {"summary": "", "severity": "fatal"}}
    errors = assert_invalid(enqueue(sandbox, event))
    assert len(errors) == 4, errors   # routing_key, summary, source, severity


def test_a_summary_of_exactly_1024_characters_is_accepted(sandbox):
    event = documented("trigger")
    event["payload"]["summary"] = "x" * 1024
    assert_accepted(enqueue(sandbox, event))


def test_malformed_json_is_an_invalid_event(sandbox):
    assert_invalid(enqueue(sandbox, b'{"routing_key": '))


def test_a_configured_fault_answers_429_then_recovers(sandbox):
    sandbox.faults(pagerduty_429_next=1)
    resp = enqueue(sandbox, documented("trigger"))
    assert resp.status_code == 429
    assert_accepted(enqueue(sandbox, documented("trigger")))
    assert [(e["status"], e["outcome"]) for e in sandbox.pagerduty_events()] == [
        (429, "throttled"), (202, "incident_opened")]
    assert len(incidents(sandbox)) == 1


def test_reset_forgets_events_and_incidents(sandbox):
    assert_accepted(enqueue(sandbox, documented("trigger")))
    sandbox.reset()
    assert sandbox.pagerduty_events() == [] and incidents(sandbox) == []


# -- V3 webhook ---------------------------------------------------------------------------------------------
@pytest.fixture
def pd_recorder(sandbox):
    rec = WebhookRecorder()
    sandbox.configure(pagerduty_webhook_url=rec.url, pagerduty_webhook_secrets=["whsec-test"])
    yield rec
    rec.stop()


def test_acknowledge_in_pagerduty_sends_the_documented_webhook(sandbox, pd_recorder):
    assert_accepted(enqueue(sandbox, documented("trigger") | {"payload": documented("trigger")["payload"]
                                                              | {"severity": "critical"}}))
    resp = sandbox.admin.post("/_sandbox/pagerduty/acknowledge",
                              json={"dedup_key": "samplekeyhere", "user": "Asha Rao", "user_id": "PASHA01"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["webhook"]["delivered"] is True
    [(headers, body)] = pd_recorder.received
    payload = json.loads(body)
    assert_same_shape(payload, load("pagerduty_webhook_incident_acknowledged.json"))
    event = payload["event"]
    assert (event["agent"]["summary"], event["agent"]["id"], event["data"]["incident_key"]) == \
        ("Asha Rao", "PASHA01", "samplekeyhere")
    assert headers["x-pagerduty-signature"].startswith("v1=") and headers["x-webhook-id"]
    assert headers["content-type"] == "application/json"
    assert incidents(sandbox)[0]["status"] == "acknowledged"


def test_acknowledge_of_an_unknown_incident_is_404(sandbox):
    resp = sandbox.admin.post("/_sandbox/pagerduty/acknowledge", json={"dedup_key": "nothing-open"})
    assert resp.status_code == 404
