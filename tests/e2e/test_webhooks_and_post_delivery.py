"""The signed webhook receiver, reconciliation of sandbox webhooks into deliveries, inbound STOP,
and post_delivery_report end to end (dag.test()) against PostgreSQL and the sandbox."""
import hashlib
import hmac
import json
import time

import httpx
import pytest
import sqlalchemy as sa

from tests.support import TEST_APP_SECRET, TEST_VERIFY_TOKEN, ReceiverServer
from tests.world import DAY, planned_world, rows, scalar, send_everything

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver(app_db):
    r = ReceiverServer(app_db)
    yield r
    r.stop()


def signed(body: bytes, secret: str = TEST_APP_SECRET) -> dict:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json"}


def status_body(wamid="wamid.TEST1", status="delivered", ts="1763870000", key=None) -> bytes:
    item = {"id": wamid, "status": status, "timestamp": ts, "recipient_id": "919000000001"}
    if key:
        item["biz_opaque_callback_data"] = key
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "200000000000001", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", "statuses": [item]}}]}]}).encode()


def wait_events(engine, n, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if scalar(engine, "SELECT count(*) FROM webhook_events") >= n:
            return True
        time.sleep(0.1)
    return False


# -- the receiver -----------------------------------------------------------------------------------
def test_verification_handshake(receiver):
    ok = httpx.get(receiver.url, params={"hub.mode": "subscribe", "hub.verify_token": TEST_VERIFY_TOKEN,
                                         "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    bad = httpx.get(receiver.url, params={"hub.mode": "subscribe", "hub.verify_token": "nope",
                                          "hub.challenge": "x"})
    assert bad.status_code == 403


def test_missing_and_bad_signatures_are_rejected_and_nothing_is_stored(app_db, receiver):
    body = status_body()
    assert httpx.post(receiver.url, content=body, headers={"Content-Type": "application/json"}).status_code == 401
    assert httpx.post(receiver.url, content=body, headers=signed(body, "wrong-secret")).status_code == 403
    tampered = body.replace(b"delivered", b"read")
    assert httpx.post(receiver.url, content=tampered, headers=signed(body)).status_code == 403
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 0
    assert receiver.stats.rejected_401 == 1 and receiver.stats.rejected_403 == 2


def test_a_replayed_event_is_stored_once(app_db, receiver):
    body = status_body(key="2026-11-23:1")
    for _ in range(3):
        r = httpx.post(receiver.url, content=body, headers=signed(body))
        assert r.status_code == 200
    got = rows(app_db, "SELECT dedupe_key, kind, wamid, status, biz_opaque, signature_valid FROM webhook_events")
    assert [(g.kind, g.wamid, g.status, g.biz_opaque, g.signature_valid) for g in got] == [
        ("status", "wamid.TEST1", "delivered", "2026-11-23:1", True)]
    # The same status with another timestamp is another event (Meta resends are identical).
    other = status_body(ts="1763870001")
    assert httpx.post(receiver.url, content=other, headers=signed(other)).status_code == 200
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 2


def test_a_signed_body_that_is_not_a_webhook_is_a_400_and_not_stored(app_db, receiver):
    body = b'{"hello": "world"}'
    assert httpx.post(receiver.url, content=body, headers=signed(body)).status_code == 400
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 0


# -- reconciliation of real sandbox webhooks ---------------------------------------------------------
# Each notification alone, and aggregated as Meta does under volume (statuses due together in one POST).
@pytest.mark.parametrize("batch_max", [1, 50])
def test_reconciliation_with_duplicated_reordered_and_skipped_delivered_webhooks(app_db, sandbox, receiver, batch_max):
    from include.reporting.webhook_reconciliation import reconcile_webhooks

    # Research recipients: ...1 delivered, ...2 read with the delivered event skipped, ...3 fails by webhook.
    planned_world(app_db, advisors=60, research_digits="1231")
    sandbox.configure(webhooks={"url": receiver.url, "batch_max": batch_max, "duplicate_rate": 0.5,
                                "reorder_rate": 0.5, "read_rate": 0.3, "sent_delay_s": 0.05,
                                "delivered_delay_s": 0.2, "read_delay_s": 0.4})
    send_everything(app_db, sandbox)
    accepted = scalar(app_db, "SELECT count(*) FROM deliveries WHERE wamid IS NOT NULL")
    ledger = sandbox.ledger(limit=10000)
    expected_events = sum(len(sandbox.admin.get("/_sandbox/ledger", params={"key": e["biz_opaque_callback_data"]})
                              .json()["data"][0]["statuses"]) for e in ledger)
    stats = sandbox.admin.get("/_sandbox/webhooks/stats").json()
    assert wait_events(app_db, expected_events), (expected_events, stats)
    sandbox.wait_webhooks_drained()  # the duplicates and retries too, not only the events counted above
    assert receiver.stats.duplicates > 0, "the sandbox sent duplicates and the receiver ignored them"
    if batch_max > 1:
        stats = sandbox.admin.get("/_sandbox/webhooks/stats").json()
        assert stats["posts"] < stats["delivered"], stats  # some notifications did share a POST
    first = reconcile_webhooks(app_db)
    assert first.deliveries_updated == accepted and first.left_unprocessed == 0
    got = {r.phone: r for r in rows(app_db, """
        SELECT a.phone_e164 AS phone, d.status, d.delivered_at, d.read_at, d.error_code, d.error_title, d.sent_at
        FROM deliveries d JOIN advisors a USING (advisor_id)""")}
    read_at_once = next(v for k, v in got.items() if k.startswith("+91990000") and k.endswith("2"))
    assert read_at_once.status == "read" and read_at_once.delivered_at is not None  # read implies delivered
    failed = next(v for k, v in got.items() if k.startswith("+91990000") and k.endswith("3"))
    assert failed.status == "failed" and failed.error_code == 131026 and failed.error_title
    normal = [v for k, v in got.items() if not k.startswith("+91990000")]
    assert all(v.status in ("delivered", "read") and v.delivered_at and v.sent_at for v in normal)
    assert all(v.read_at is None or v.read_at >= v.delivered_at for v in normal)
    # Reprocessing changes nothing; a late 'sent' replayed after 'read' never moves a status backwards.
    assert reconcile_webhooks(app_db).deliveries_updated == 0
    wamid = scalar(app_db, "SELECT wamid FROM deliveries WHERE status = 'read' LIMIT 1")
    late = status_body(wamid=wamid, status="sent", ts="1763879999")
    assert httpx.post(receiver.url, content=late, headers=signed(late)).status_code == 200
    reconcile_webhooks(app_db)
    assert scalar(app_db, "SELECT status FROM deliveries WHERE wamid = :w", w=wamid) == "read"


def test_inbound_stop_puts_the_number_on_dnc_and_a_later_send_that_day_is_skipped(app_db, sandbox, receiver):
    planned_world(app_db, advisors=40, research_digits="")
    sandbox.configure(webhooks={"url": receiver.url})
    phone, advisor = rows(app_db, "SELECT a.phone_e164, a.advisor_id FROM delivery_plan p JOIN advisors a "
                                  "USING (advisor_id) ORDER BY advisor_id LIMIT 1")[0]
    for text, who in (("STOP", phone), ("Please send me more", "+919812345678"), ("बंद करें", "+919812345679")):
        sandbox.admin.post("/_sandbox/inbound", json={"from": who, "text": text}).raise_for_status()
    assert wait_events(app_db, 3)
    dnc = {r.phone_e164: r for r in rows(app_db, "SELECT d.phone_e164, d.source, d.source_event_id, e.kind "
                                                 "FROM do_not_contact d JOIN webhook_events e "
                                                 "ON e.event_id = d.source_event_id")}
    assert set(dnc) == {phone, "+919812345679"}
    assert dnc[phone].source == "inbound_opt_out" and dnc[phone].kind == "message"
    assert scalar(app_db, "SELECT count(*) FROM webhook_events WHERE kind = 'message'") == 3  # stored for operators
    send_everything(app_db, sandbox)
    got = rows(app_db, "SELECT status, skip_reason, wamid FROM deliveries WHERE advisor_id = :a", a=advisor)[0]
    assert (got.status, got.skip_reason, got.wamid) == ("skipped", "dnc_at_send_time", None)
    assert not sandbox.ledger(to=phone)


# -- the DAG -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dag():
    from tests.support import load_dag

    return load_dag("post_delivery_report")


def delivered_world(app_db, sandbox, receiver):
    from include.reporting.webhook_reconciliation import reconcile_webhooks

    planned_world(app_db, advisors=120, research_digits="23")
    sandbox.configure(webhooks={"url": receiver.url, "read_rate": 0.5,
                                "sent_delay_s": 0.05, "delivered_delay_s": 0.1, "read_delay_s": 0.2})
    send_everything(app_db, sandbox)
    accepted = scalar(app_db, "SELECT count(*) FROM deliveries WHERE wamid IS NOT NULL")
    assert wait_events(app_db, 2 * accepted)
    sandbox.wait_webhooks_drained()
    return reconcile_webhooks


def test_final_checkpoint_reconciles_validates_and_publishes_the_report(dag, app_db, sandbox, receiver, airflow_db):
    from airflow.sdk import ObjectStoragePath

    delivered_world(app_db, sandbox, receiver)
    dr = dag.test(run_conf={"business_date": str(DAY), "checkpoint": "06:30"})
    assert dr.state == "success"
    states = {t.task_id: t.state for t in dr.get_task_instances()}
    assert states["build_daily_report_0630"] == "success" and states["check_sla_0605"] == "skipped"
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status IN ('accepted', 'sent')") == 0
    post = [p["payload"] for p in sandbox.slack_posts() if "Daily delivery report" in p["payload"]["text"]][-1]
    facts = {f["text"].split("\n")[0].strip("*"): f["text"].split("\n", 1)[1] for b in post["blocks"]
             if b["type"] == "section" and "fields" in b for f in b["fields"]}
    text = json.dumps(post["blocks"])
    assert "all expectations passed" in text, text
    # A link an on-call engineer can open from Slack: http, served by the cockpit, not a file:// path.
    from include.core import config

    assert facts["report"] == f"{config.UI_BASE_URL.rstrip('/')}/cockpit/reports/{DAY}/daily-report.html"
    assert facts["outcomes CSV"].startswith("http") and facts["stored at"].endswith(f"reports/{DAY}/daily-report.html")
    assert facts["planned / accepted"].startswith(str(scalar(app_db, "SELECT count(*) FROM delivery_plan")))
    folder = ObjectStoragePath(f"file://{__import__('os').environ['FA_DATA_DIR']}/objects/reports/{DAY}")
    html = (folder / "daily-report.html").read_text()
    assert "Delivery funnel" in html and "14-day trend" in html and "<svg" in html and "Data quality" in html
    csv = (folder / "outcomes.csv").read_text().splitlines()
    assert len(csv) == 1 + scalar(app_db, "SELECT count(*) FROM delivery_plan")
    dq = json.loads((folder / "data-quality.json").read_text())
    assert dq["success"] and dq["evaluated"] == 10


def test_sla_checkpoint_pages_on_a_critical_failure(dag, app_db, sandbox, receiver, airflow_db):
    delivered_world(app_db, sandbox, receiver)
    with app_db.begin() as c:  # an access-token rejection was seen during the window
        c.execute(sa.text("INSERT INTO delivery_attempts (business_date, advisor_id, attempt_no, outcome, error_code)"
                          " SELECT :d, min(advisor_id), 1, 'retry', 190 FROM delivery_plan"), {"d": DAY})
    dr = dag.test(run_conf={"business_date": str(DAY), "checkpoint": "06:05"})
    assert dr.state == "success"
    check = rows(app_db, "SELECT severity, items FROM check_results WHERE check_name = 'sla_0605'")[0]
    assert check.severity == "P0" and any("critical failures: 190" in i for i in check.items)
    post = [p["payload"] for p in sandbox.slack_posts() if "Delivery SLA checkpoint" in p["payload"]["text"]][-1]
    assert post["text"].startswith("[P0]")


def test_alert_thresholds_delivery_rate_and_opt_out_spike(app_db, sandbox):
    from include.reporting.post_delivery_report import threshold_alerts

    planned_world(app_db, advisors=40, research_digits="")

    def kpis(rate):
        return {"overall": {"delivery_rate": rate, "delivered": 0, "planned": 0, "skipped": 0,
                            "failed_by_error_code": {}}}

    assert threshold_alerts(app_db, DAY, kpis(0.99), "06:15").ok
    assert threshold_alerts(app_db, DAY, kpis(0.93), "06:15").severity.value == "P2"   # warning
    assert threshold_alerts(app_db, DAY, kpis(0.85), "06:30").severity.value == "P0"   # critical
    assert threshold_alerts(app_db, DAY, kpis(0.50), "06:05").ok  # too early to judge delivery at 06:05
    # The day's delivery-rate incident: opened at P2 by the warning, joined (not duplicated) by the P0 alert.
    (incident,) = rows(app_db, "SELECT incident_id, severity, dedup_key, impact FROM incidents")
    assert (incident.severity, incident.dedup_key) == ("P0", f"delivery_rate:{DAY}")
    assert incident.impact["delivery_rate"] == 0.85
    alerts = rows(app_db, "SELECT text FROM incident_timeline WHERE kind = 'alert' ORDER BY at")
    assert len(alerts) == 2, alerts  # one entry per threshold crossing
    assert threshold_alerts(app_db, DAY, kpis(0.97), "06:30").ok  # recovered: the incident resolves itself
    assert scalar(app_db, "SELECT resolved_by FROM incidents WHERE incident_id = :i", i=incident.incident_id) \
        == "automatic"
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert sum("Delivery rate" in t for t in posts) == 2
    for i in range(11):  # more than 10 opt-outs in 5 minutes
        with app_db.begin() as c:
            c.execute(sa.text("INSERT INTO do_not_contact (phone_e164, reason, source) VALUES (:p, 'STOP', "
                              "'inbound_opt_out')"), {"p": f"+9198100000{i:02d}"})
    spike = threshold_alerts(app_db, DAY, kpis(0.99), "06:15")
    assert spike.severity.value == "P1" and "opt-out spike" in spike.items[0]
    assert any("Opt-out spike" in p["payload"]["text"] for p in sandbox.slack_posts())
