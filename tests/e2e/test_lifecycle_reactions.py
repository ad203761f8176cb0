"""The fan-out reacts to Meta's lifecycle webhooks within a control tick, through the real receiver and a
`delivery_fanout` DAG run: the bodies are the contract fixtures written from Meta's webhook reference
(tests/contract/fixtures), signed as Meta signs them. The sandbox's own template and number stay healthy, so
no API rejection or Graph poll can be what moved the run: only the webhook."""
from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from include.core.dates import ist_today
from tests.support import ROOT, TEST_APP_SECRET
from tests.world import planned_world, scalar

pytestmark = pytest.mark.e2e
TODAY = ist_today()
CONF = {"business_date": str(TODAY), "honour_jitter": False}
FIXTURES = ROOT / "tests" / "contract" / "fixtures"


@pytest.fixture(scope="module")
def dag():
    from tests.support import load_dag

    return load_dag("delivery_fanout")


def meta_webhook(fixture: str, **value) -> dict:
    """A webhook body from a contract fixture (Meta's documented shape), with its value fields overridden."""
    body = {k: v for k, v in json.loads((FIXTURES / fixture).read_text()).items() if not k.startswith("_")}
    body["entry"][0]["id"] = "200000000000001"
    body["entry"][0]["changes"][0]["value"].update(value)
    return body


def post_signed(receiver, body: dict) -> None:
    from devtools.sandbox.webhooks import sign

    raw = json.dumps(body).encode()
    r = httpx.post(receiver.url, content=raw, headers={"Content-Type": "application/json",
                                                       "X-Hub-Signature-256": sign(raw, TEST_APP_SECRET)})
    assert r.status_code == 200, r.text


def when_accepted(sandbox, n: int, action, number: str | None = None) -> tuple[threading.Thread, dict]:
    """Run `action` from a thread once the sandbox has accepted `n` messages (from `number`, when given: its
    shard's sender is then surely running); records when it ran."""
    done: dict = {}

    def accepted() -> int:
        stats = sandbox.ledger_stats()
        return stats["by_number"].get(number, 0) if number else stats["accepted"]

    def watch():
        deadline = time.monotonic() + 60
        while accepted() < n and time.monotonic() < deadline:
            time.sleep(0.01)
        action()
        done["at"] = time.time()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t, done


def test_template_paused_by_webhook_switches_the_run_to_the_backup_variant(dag, app_db, sandbox, receiver, airflow_db):
    planned = planned_world(app_db, advisors=240, research_digits="", day=TODAY)
    body = meta_webhook("webhook_template_status_paused.json", message_template_name="daily_pack_v1",
                        message_template_language="en")
    watcher, fired = when_accepted(sandbox, 30, lambda: post_signed(receiver, body))
    dr = dag.test(run_conf=CONF)
    watcher.join(10)
    assert dr.state == "success" and "at" in fired
    assert scalar(app_db, "SELECT status FROM whatsapp_templates WHERE name = 'daily_pack_v1' AND language = 'en'") \
        == "PAUSED"
    ledger = sandbox.ledger(limit=100000)
    v1 = [e for e in ledger if e["template"] == "daily_pack_v1"]
    v2 = [e for e in ledger if e["template"] == "daily_pack_v2"]
    assert v1 and v2
    # Within a control tick (0.5 s) plus the requests already in flight, nothing more goes out on the paused one.
    assert max(e["accepted_at"] for e in v1) < fired["at"] + 1.5
    # The sandbox never rejected a send: the webhook alone moved the run.
    assert scalar(app_db, "SELECT count(*) FROM delivery_attempts WHERE error_code = 132015") == 0
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'accepted'") == planned
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any("switched to daily_pack_v2" in t for t in posts), posts
    stats = sandbox.ledger_stats()
    assert stats["duplicate_recipient_days"] == {} and stats["accepted"] == planned


def test_quality_flagged_by_webhook_rotates_the_shard_to_the_hot_spare(dag, app_db, sandbox, receiver, airflow_db):
    planned = planned_world(app_db, advisors=480, research_digits="", day=TODAY)
    body = meta_webhook("webhook_phone_quality_flagged.json", display_phone_number="918000000002")
    # Fired while shard 1's sender (number ...02) is running, whatever order dag.test runs the units in.
    watcher, fired = when_accepted(sandbox, 5, lambda: post_signed(receiver, body), number="100000000000002")
    dr = dag.test(run_conf=CONF)
    watcher.join(10)
    assert dr.state == "success" and "at" in fired
    assert scalar(app_db, "SELECT active FROM sending_numbers WHERE phone_number_id = '100000000000002'") is False
    assert scalar(app_db, "SELECT shard FROM sending_numbers WHERE phone_number_id = '100000000000005'") == 1
    ledger = sandbox.ledger(limit=100000)
    assert any(e["phone_number_id"] == "100000000000005" for e in ledger)
    late_on_old = [e for e in ledger if e["phone_number_id"] == "100000000000002" and e["accepted_at"] > fired["at"] + 1.5]
    assert late_on_old == []
    # The sandbox still rates the number GREEN: no Graph poll could have seen RED; the webhook did.
    assert sandbox.admin.get("/v21.0/100000000000002", params={"fields": "quality_rating"},
                             headers={"Authorization": "Bearer test-token-not-secret"}).json()["quality_rating"] \
        == "GREEN"
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'accepted'") == planned
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any(t.startswith("[P0]") and "rotated to hot spare 100000000000005" in t for t in posts), posts
    stats = sandbox.ledger_stats()
    assert stats["duplicate_recipient_days"] == {} and stats["accepted"] == planned


def test_template_pacing_is_counted_and_pages_p1(app_db, sandbox):
    from tests.e2e.test_delivery_fanout import _send_all

    planned = planned_world(app_db, advisors=120, research_digits="")
    sandbox.faults(pacing_rate=0.5, pacing_templates=["daily_pack_v1"])
    results = _send_all(app_db, sandbox, jitter_honoured=False)
    assert sum(r["held"] for r in results) > 0
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'accepted'") == planned
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any(t.startswith("[P1]") and "pacing template daily_pack_v1" in t for t in posts), posts


def test_a_messaging_limit_below_todays_recipients_by_webhook_pages_p1(app_db, sandbox, receiver):
    from tests.e2e.test_delivery_fanout import _send_all

    planned = planned_world(app_db, advisors=300, research_digits="")
    assert planned > 250
    post_signed(receiver, meta_webhook("webhook_phone_quality_flagged.json", display_phone_number="918000000003",
                                       event="DOWNGRADE", max_daily_conversations_per_business="TIER_250"))
    assert scalar(app_db, "SELECT messaging_tier FROM sending_numbers WHERE phone_number_id = '100000000000003'") \
        == "TIER_250"
    _send_all(app_db, sandbox, jitter_honoured=False)
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any(t.startswith("[P1]") and f"TIER_250 is below today's {planned} recipients" in t for t in posts), posts
