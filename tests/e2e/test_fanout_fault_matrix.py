"""The fan-out's guarantees under faults, in production mode: the senders see only what Meta would give
(API answers and status webhooks through the real receiver); the sandbox's ledger is only the referee.

Faults: a SIGKILLed sender with webhooks 60 s late, timeouts with the webhook receiver down, late
webhooks settled after the run, a hanging Slack during a pause, a pause longer than the deadline,
a PostgreSQL restart mid-run, and a unit that runs out of time. Every one ends with 0 duplicates by the
ledger and no loss: each planned row is terminal or explicitly reported as unknown."""
from __future__ import annotations

import socket
import threading
import time

import pytest
import sqlalchemy as sa

from tests.e2e.test_delivery_fanout import _all_units, _options, _send_all, _settings, sender_killed_after
from tests.world import DAY, planned_world, rows, scalar

pytestmark = pytest.mark.e2e


def wait_until(predicate, timeout_s: float, what: str, poll_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll_s)
    assert predicate(), f"timed out after {timeout_s} s waiting for {what}"


def statuses(engine) -> dict[str, int]:
    return {r.status: r.n for r in rows(engine, "SELECT status, count(*) AS n FROM deliveries GROUP BY 1")}


def assert_no_duplicate_and_nothing_lost(engine, sandbox):
    """The referee: nobody messaged twice; every ledger send is recorded as accepted or reported unknown;
    every planned row is terminal or reported unknown."""
    stats = sandbox.ledger_stats()
    assert stats["duplicate_recipient_days"] == {} and stats["duplicate_idempotency_keys"] == {}
    keys = {e["biz_opaque_callback_data"] for e in sandbox.ledger(limit=100000)}
    by_status = {r.idempotency_key: r.status for r in rows(engine, "SELECT idempotency_key, status FROM deliveries")}
    assert {k for k in keys if by_status.get(k) not in ("accepted", "sent", "delivered", "read", "unknown")} == set()
    accepted = {k for k, s in by_status.items() if s in ("accepted", "sent", "delivered", "read")}
    assert accepted <= keys  # nothing recorded as sent that WhatsApp never accepted
    assert len(by_status) == scalar(engine, "SELECT count(*) FROM delivery_plan")
    assert set(by_status.values()) <= {"accepted", "sent", "delivered", "read", "failed", "skipped", "unknown"}


def webhooks_all_delivered(sandbox) -> bool:
    """The sandbox has no webhook left to post: each one scheduled was posted, re-scheduled or dropped."""
    s = sandbox.admin.get("/_sandbox/webhooks/stats").json()
    return s["pending"] == 0 and s.get("delivered", 0) == s.get("scheduled", 0) - s.get("retried", 0) - s.get(
        "dropped", 0)


def one_unit_with_every_row(engine):
    with engine.begin() as c:  # one unit with all the rows, so a kill surely lands mid-batch
        c.execute(sa.text("UPDATE delivery_plan SET shard = 0, segment = 'equity', phone_number_id = '100000000000001'"))
    return {"business_date": str(DAY), "shard": 0, "segment": "equity"}


def test_sigkill_mid_batch_with_webhooks_60s_late_keeps_in_doubt_rows_unknown(app_db, sandbox, receiver, pg_server):
    from include.delivery.fanout import enqueue, send_unit

    planned_world(app_db, advisors=200, research_digits="")
    enqueue(app_db, DAY)
    unit = one_unit_with_every_row(app_db)
    sandbox.configure(webhooks={"sent_delay_s": 60, "delivered_delay_s": 61, "read_delay_s": 62})
    sandbox.faults(latency_ms_median=40, latency_ms_p99=80)
    sender_killed_after(40, sandbox, pg_server, app_db, unit)
    sent_before_crash = sandbox.ledger_stats()["accepted"]
    assert 40 <= sent_before_crash < 190, "the crash must land mid-run"
    assert statuses(app_db).get("sending", 0) > 0  # claimed rows whose fate the dead process never wrote down
    wait_until(lambda: scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'sending' AND "
                                      "sending_at > now() - interval '2 seconds'") == 0, 10, "orphaned rows to age")

    result = send_unit(app_db, _settings(sandbox), unit, _options(sandbox, jitter_honoured=False))  # the task retry
    # No webhook has arrived: the dead sender's rows cannot be judged, so none is resent.
    assert result["unknown_left"] > 0 and result["reconciled_requeued"] == 0
    assert_no_duplicate_and_nothing_lost(app_db, sandbox)
    assert statuses(app_db).get("unknown") == result["unknown_left"]
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any(t.startswith("[P1]") and "unknown outcome" in t for t in posts), posts


def test_timeouts_with_the_receiver_down_are_reported_not_resent(app_db, sandbox):
    from tests.support import free_port

    planned_world(app_db, advisors=200, research_digits="")
    sandbox.configure(webhooks={"url": f"http://127.0.0.1:{free_port()}/webhook", "max_attempts": 1})
    sandbox.faults(timeout_rate=0.05, timeout_hang_s=5)
    results = _send_all(app_db, sandbox, parallel=True, jitter_honoured=False)
    unknown = sum(r["unknown_left"] for r in results)
    assert unknown > 0 and sum(r["reconciled_requeued"] for r in results) == 0
    assert_no_duplicate_and_nothing_lost(app_db, sandbox)
    # The sandbox accepted every timed-out request: each is in the ledger once and reported unknown here.
    assert sandbox.ledger_stats()["accepted"] == statuses(app_db)["accepted"] + unknown


def test_post_delivery_settles_unknown_sends_when_late_webhooks_arrive(app_db, sandbox, receiver):
    from include.reporting import post_delivery_report as post_delivery
    from include.reporting.tasks import reconcile_webhook_events

    planned_world(app_db, advisors=200, research_digits="")
    sandbox.configure(webhooks={"sent_delay_s": 10, "delivered_delay_s": 10.5, "read_delay_s": 11})
    sandbox.faults(timeout_rate=0.05, timeout_hang_s=5)
    results = _send_all(app_db, sandbox, jitter_honoured=False, settle_wait_s=0.5)
    unknown = sum(r["unknown_left"] for r in results)
    assert unknown > 0
    wait_until(lambda: webhooks_all_delivered(sandbox), 60, "the late status webhooks", poll_s=0.5)
    before = post_delivery.stuck_messages(app_db, DAY)
    out = reconcile_webhook_events({"params": {"business_date": str(DAY)}})
    assert out["unknown_settled_accepted"] == unknown and out["unknown_left"] == 0
    after = post_delivery.stuck_messages(app_db, DAY)
    assert before.facts["unknown_outcome"] == unknown and after.facts["unknown_outcome"] == 0
    assert "unknown" not in statuses(app_db)
    assert scalar(app_db, "SELECT count(*) FROM webhook_events WHERE kind = 'status' AND processed_at IS NULL") == 0
    assert_no_duplicate_and_nothing_lost(app_db, sandbox)


class HangingServer:
    """Accepts connections and never answers: a Slack that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        for c in self.accepted:
            c.close()
        self.sock.close()


def test_pause_is_honoured_within_a_second_while_slack_hangs(app_db, sandbox, monkeypatch):
    import json

    from include.delivery.kill_switch import set_sending_paused

    hanging = HangingServer()
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", json.dumps({
        "conn_type": "slackwebhook", "password": f"http://127.0.0.1:{hanging.port}/hang"}))
    planned_world(app_db, advisors=200, research_digits="")
    with app_db.begin() as c:  # spread the sends over ~10 s
        c.execute(sa.text("UPDATE delivery_plan SET jitter_ms = (advisor_id * 37) % 10000"))
    results: list = []
    runner = threading.Thread(target=lambda: results.extend(_send_all(app_db, sandbox, parallel=True)))
    runner.start()
    try:
        wait_until(lambda: sandbox.ledger_stats()["accepted"] >= 20, 30, "20 accepted sends")
        # A number turns RED: its sender rotates it and pages, and the page hangs in Slack for 10 s.
        sandbox.admin.post("/_sandbox/numbers/100000000000002", json={"quality_rating": "RED"}).raise_for_status()
        wait_until(lambda: len(hanging.accepted) >= 1, 10, "a Slack post to hang")
        set_sending_paused(app_db, True, "drill: pause while Slack hangs", "tests")
        paused_at = time.monotonic()
        wait_until(lambda: time.monotonic() - paused_at >= 1.0, 2, "one second")
        after_1s = sandbox.ledger_stats()["accepted"]
        wait_until(lambda: time.monotonic() - paused_at >= 4.0, 5, "four seconds")
        assert sandbox.ledger_stats()["accepted"] == after_1s  # nothing left after the first second
        set_sending_paused(app_db, False, "drill over", "tests")
        runner.join(120)
        assert not runner.is_alive()
    finally:
        set_sending_paused(app_db, False, "cleanup", "tests")
        runner.join(120)
        hanging.close()
    assert_no_duplicate_and_nothing_lost(app_db, sandbox)
    assert statuses(app_db) == {"accepted": scalar(app_db, "SELECT count(*) FROM delivery_plan")}


def test_a_pause_longer_than_the_deadline_then_resume_delivers_everything(app_db, sandbox):
    from include.delivery.fanout import send_unit
    from include.delivery.kill_switch import set_sending_paused

    planned_world(app_db, advisors=120, research_digits="")
    set_sending_paused(app_db, True, "drill: long pause", "tests")
    units = _all_units(app_db)
    results: list = []
    runner = threading.Thread(target=lambda: results.extend(
        send_unit(app_db, _settings(sandbox), u, _options(sandbox, jitter_honoured=False, hard_deadline_s=1.5))
        for u in units))
    runner.start()
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started >= 3.0, 4, "a pause past the 1.5 s deadline")
    assert sandbox.ledger_stats()["accepted"] == 0
    set_sending_paused(app_db, False, "drill over", "tests")
    runner.join(120)
    assert not runner.is_alive() and len(results) == len(units)
    assert statuses(app_db) == {"accepted": scalar(app_db, "SELECT count(*) FROM delivery_plan")}
    assert_no_duplicate_and_nothing_lost(app_db, sandbox)


def test_a_pause_past_its_limit_fails_the_unit_visibly_with_rows_queued(app_db, sandbox):
    from include.delivery.fanout import UnitIncomplete, send_unit
    from include.delivery.kill_switch import set_sending_paused

    planned_world(app_db, advisors=60, research_digits="")
    set_sending_paused(app_db, True, "drill: paused for good", "tests")
    unit = _all_units(app_db)[0]
    with pytest.raises(UnitIncomplete, match="still queued"):
        send_unit(app_db, _settings(sandbox), unit, _options(sandbox, jitter_honoured=False, max_pause_s=1.0))
    assert sandbox.ledger_stats()["accepted"] == 0
    assert statuses(app_db) == {"queued": scalar(app_db, "SELECT count(*) FROM delivery_plan")}
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any(t.startswith("[P0]") and "still queued" in t and "paused" in t for t in posts), posts


def test_a_unit_out_of_time_pages_and_fails_with_its_rows_queued(app_db, sandbox):
    from include.core import config
    from include.delivery import planning
    from include.delivery.fanout import UnitIncomplete, send_unit

    planned_world(app_db, advisors=80, research_digits="")
    with app_db.begin() as c:  # half the rows are due long after the (short) deadline
        c.execute(sa.text("UPDATE delivery_plan SET jitter_ms = CASE WHEN advisor_id % 2 = 0 THEN 0 ELSE 60000 END"))
    unit = _all_units(app_db)[0]
    with pytest.raises(UnitIncomplete, match="deadline"):
        send_unit(app_db, _settings(sandbox), unit, _options(sandbox, hard_deadline_s=1.5))
    left = scalar(app_db, "SELECT count(*) FROM deliveries d JOIN delivery_plan p USING (business_date, advisor_id) "
                          "WHERE d.status = 'queued' AND p.shard = :s", s=unit["shard"])
    assert left > 0
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any(t.startswith("[P0]") and f"{left} messages still queued" in t and "deadline" in t
               for t in posts), posts
    # Planning refuses a jitter window the senders could not finish inside their deadline.
    with pytest.raises(ValueError, match="deadline"):
        planning.build_plan(app_db, DAY, {"en": "daily_pack_v1"}, jitter_window_s=config.MAX_JITTER_WINDOW_S + 1)


def test_postgres_restart_mid_run_sends_nobody_twice_and_loses_nobody(sandbox):
    """On a PostgreSQL of its own (restarting the session's server would disturb other tests)."""
    from include.core import db
    from devtools.devstack.pg import EmbeddedPostgres
    from tests.support import ReceiverServer

    import shutil
    import tempfile
    from pathlib import Path

    home = Path(tempfile.mkdtemp(prefix="fa-pgrestart-"))  # as the session's server: a path the pg user can reach
    pg = EmbeddedPostgres(home / "pg", durable=False).start()
    try:
        pg.create_database("app")
        engine = db.get_engine(pg.url("app"))
        db.migrate(engine)
        planned_world(engine, advisors=200, research_digits="")
        with engine.begin() as c:  # spread the sends over ~8 s
            c.execute(sa.text("UPDATE delivery_plan SET jitter_ms = (advisor_id * 37) % 8000"))
        receiver = ReceiverServer(engine)
        sandbox.configure(webhooks={"url": receiver.url})
        results: list = []
        runner = threading.Thread(target=lambda: results.extend(_send_all(engine, sandbox, parallel=True)))
        runner.start()
        wait_until(lambda: sandbox.ledger_stats()["accepted"] >= 40, 30, "40 accepted sends")
        pg.stop()
        assert not pg.is_running()
        down_at = sandbox.ledger_stats()["accepted"]
        pg.start()
        runner.join(180)
        assert not runner.is_alive()
        assert down_at < scalar(engine, "SELECT count(*) FROM delivery_plan")
        assert statuses(engine) == {"accepted": scalar(engine, "SELECT count(*) FROM delivery_plan")}
        assert_no_duplicate_and_nothing_lost(engine, sandbox)
        receiver.stop()
    finally:
        db.dispose_engines()
        pg.destroy()
        shutil.rmtree(home, ignore_errors=True)
