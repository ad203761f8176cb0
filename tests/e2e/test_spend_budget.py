"""The spend budget end to end (issue 18 §3): status webhooks' pricing flows from the sandbox through the real
receiver into webhook_events, the senders' guard bills it and, past the budget, engages the kill switch mid-run;
resuming needs an audited override; the 05:50 check warns from the plan. dag.test() against PostgreSQL and the
sandbox over real HTTP; the sandbox's ledger is only the referee."""
from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
import sqlalchemy as sa

from include.core.dates import ist_today
from include.delivery import budget
from include.delivery.kill_switch import flip_sending, sending_state
from tests.support import load_dag, wait_until
from tests.world import DAY, make_ready, planned_world, rows, scalar, seed

pytestmark = pytest.mark.e2e
TODAY = ist_today()


def _posts(sandbox, hook: str | None = None) -> list[dict]:
    return [p["payload"] for p in sandbox.slack_posts() if hook is None or p["hook"] == hook]


def _audit(engine, action: str):
    return rows(engine, "SELECT actor, reason, details FROM audit_log WHERE action = :a ORDER BY audit_id", a=action)


def _quiet_ledger(sandbox, seconds: float = 1.0, timeout: float = 15.0) -> int:
    """The sandbox ledger's count once it has not moved for `seconds` (sends in flight land first)."""
    state = {"n": sandbox.ledger_stats()["accepted"], "since": time.monotonic()}

    def settled():
        n = sandbox.ledger_stats()["accepted"]
        if n != state["n"]:
            state.update(n=n, since=time.monotonic())
        return time.monotonic() - state["since"] >= seconds

    wait_until(settled, timeout=timeout, poll_s=0.05, what="the ledger to stop moving")
    return state["n"]


def test_budget_crossed_mid_run_stops_sending_within_a_second_and_rows_stay_queued(
        app_db, sandbox, receiver, airflow_db, monkeypatch):
    monkeypatch.setenv("FA_BUDGET_DAILY_INR", "20")      # ~24 marketing messages at ₹0.8631
    monkeypatch.setenv("FA_BUDGET_CHECK_S", "0.25")
    sandbox.configure(webhooks={"sent_delay_s": 0.02, "delivered_delay_s": 0.1})
    planned = planned_world(app_db, advisors=200, research_digits="", day=TODAY)
    with app_db.begin() as c:  # spread the sends over ~8 s, so the budget is crossed early in the run
        c.execute(sa.text("UPDATE delivery_plan SET jitter_ms = (advisor_id * 37) % 8000"))
    seen: dict = {}

    def watch_then_override():
        """Beside the run (dag.test() needs the main thread): wait for the stop, measure it, then resume with an
        audited override so the same run finishes."""
        try:
            wait_until(lambda: sending_state(app_db).paused, timeout=60, what="the budget guard to stop sending")
            seen["state"] = sending_state(app_db)
            seen["stopped_at"] = _quiet_ledger(sandbox)
            seen["last_accepted"] = max(e["accepted_at"] for e in sandbox.ledger(limit=100000))
            seen["queued"] = scalar(app_db, "SELECT count(*) FROM deliveries WHERE business_date = :d "
                                            "AND status = 'queued'", d=TODAY)
            seen["spent"] = scalar(app_db, "SELECT inr FROM spend_daily WHERE business_date = :d", d=TODAY)
            held_until = time.monotonic() + 1.5  # held: the ledger does not move while the switch is on
            seen["moved_while_stopped"] = False
            while time.monotonic() < held_until:
                seen["moved_while_stopped"] |= sandbox.ledger_stats()["accepted"] != seen["stopped_at"]
                time.sleep(0.1)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            seen["error"] = exc
        finally:
            try:
                flip_sending(app_db, False, "finance approved the overrun", "tests",
                             budget_override="month-end campaign approved by finance")
            except Exception as exc:  # noqa: BLE001 - never leave the senders paused behind a failure
                seen.setdefault("error", exc)
                with app_db.begin() as c:
                    c.execute(sa.text("UPDATE ops_controls SET paused = false, cause = 'operator'"))

    watcher = threading.Thread(target=watch_then_override)
    watcher.start()
    dr = load_dag("delivery_fanout").test(run_conf={"business_date": str(TODAY), "honour_jitter": True})
    watcher.join(120)
    assert "error" not in seen, seen.get("error")
    state = seen["state"]
    assert state.cause == "budget" and state.changed_by == budget.GUARD_ACTOR and "budget exceeded" in state.reason
    assert seen["last_accepted"] - state.changed_at.timestamp() <= 1.0, "sends went on for more than a second"
    assert not seen["moved_while_stopped"], "a message was sent while stopped"
    assert seen["queued"] > 0 and seen["stopped_at"] + seen["queued"] <= planned  # the rest stayed queued
    assert seen["spent"] >= 20
    # The approvers were paged (P0); on-call heard of the stop (P1), with the figures.
    [page] = [p for p in _posts(sandbox, "approvers") if p["text"].startswith("[P0]")]
    assert "daily budget exceeded" in page["text"] and "budget override" in json.dumps(page["blocks"])
    assert any(p["text"].startswith("[P1]") and "spend budget guard" in p["text"] for p in _posts(sandbox, "alerts"))
    [engaged] = _audit(app_db, "pause_sending")
    assert engaged.actor == budget.GUARD_ACTOR and engaged.details["cause"] == "budget"
    # The override let the same run finish; the guard did not stop it again today.
    assert dr.state == "success"
    assert not sending_state(app_db).paused
    stats = sandbox.ledger_stats()
    assert stats["accepted"] == planned and stats["duplicate_idempotency_keys"] == {}
    [override] = rows(app_db, "SELECT period, period_start, granted_by, reason FROM budget_overrides")
    assert (override.period, override.period_start, override.granted_by) == ("daily", TODAY, "tests")


def _billed_today(engine, n: int, first: int = 0) -> None:
    """`n` marketing messages billed today, as the receiver stores their sent statuses."""
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as c:
        for i in range(first, first + n):
            payload = {"id": f"wamid.t{i}", "status": "sent", "timestamp": str(int(now.timestamp())),
                       "pricing": {"billable": True, "pricing_model": "PMP", "type": "regular",
                                   "category": "marketing"}}
            c.execute(sa.text("INSERT INTO webhook_events (dedupe_key, kind, wamid, status, event_ts, payload, "
                              "raw_body, signature_valid) VALUES (:k, 'status', :w, 'sent', :ts, CAST(:p AS jsonb), "
                              "'', true)"), {"k": f"s:wamid.t{i}", "w": f"wamid.t{i}", "ts": now,
                                             "p": json.dumps(payload)})


def test_resume_after_a_budget_stop_needs_an_audited_override(app_db, sandbox, airflow_db, monkeypatch):
    monkeypatch.setenv("FA_BUDGET_DAILY_INR", "5")
    _billed_today(app_db, 10)  # ₹8.63
    v = budget.check_budget(app_db)
    assert [p.period for p in v.stops] == ["daily"]
    assert sending_state(app_db).cause == "budget"
    resume = load_dag("ops_resume_sending")

    refused = resume.test(run_conf={"reason": "we need to send"})
    assert refused.state == "failed"
    state = sending_state(app_db)
    assert state.paused and state.cause == "budget"
    assert _audit(app_db, "resume_sending") == []
    assert scalar(app_db, "SELECT count(*) FROM budget_overrides") == 0
    # An operator's refused input pages nobody.
    assert not any("Task failed" in p["text"] for p in _posts(sandbox))

    ok = resume.test(run_conf={"reason": "we need to send",
                               "budget_override_reason": "regulatory notice must go out today"})
    assert ok.state == "success"
    state = sending_state(app_db)
    assert not state.paused and state.cause == "operator"
    [row] = _audit(app_db, "resume_sending")
    assert row.reason == "we need to send"
    assert row.details["budget_override"]["reason"] == "regulatory notice must go out today"
    assert row.details["budget_override"]["budgets"][0]["period"] == "daily"
    assert rows(app_db, "SELECT period, reason FROM budget_overrides")[0] == (
        "daily", "regulatory notice must go out today")
    # Overridden: more spend today neither stops sending again nor pages again; it is reported as info.
    _billed_today(app_db, 5, first=10)
    v = budget.check_budget(app_db)
    assert v.stops == [] and [p.period for p in v.infos] == ["daily"]
    assert not sending_state(app_db).paused
    assert any(p["text"].startswith("[info]") and "daily WhatsApp budget" in p["text"] for p in _posts(sandbox))
    assert len([p for p in _posts(sandbox, "approvers") if p["text"].startswith("[P0]")]) == 1


def test_0550_check_warns_when_todays_plan_would_exceed_the_budget(app_db, sandbox, airflow_db, monkeypatch):
    seed(app_db)
    make_ready(app_db)
    monkeypatch.setenv("FA_BUDGET_DAILY_INR", "50")  # ~200 advisors x ₹0.8631 ≈ ₹170
    dr = load_dag("pre_delivery_check").test(run_conf={"business_date": str(DAY), "jitter_window_s": 30})
    assert dr.state == "success"  # a P1 warns, it does not fail the run
    [check] = rows(app_db, "SELECT severity, ok, items FROM check_results WHERE check_name = 'spend_budget'")
    assert check.severity == "P1" and not check.ok
    item = next(i for i in check.items if "daily budget" in i)
    assert "would exceed" in item and "of ₹50.00" in item
    planned = scalar(app_db, "SELECT count(*) FROM delivery_plan WHERE business_date = :d", d=DAY)
    assert f"₹{planned * 0.8631:,.2f}" in item
    summary = [p for p in _posts(sandbox) if "Pre-delivery check" in p["text"]][-1]
    assert summary["text"].startswith("[P1]") and "would exceed the daily budget" in json.dumps(summary["blocks"])
