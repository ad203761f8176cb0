"""A scheduled fan-out that starts long after 06:00 (scheduler down, or a stack started at 14:00: with
catchup=False Airflow still runs the most recent missed slot) must not send the morning pack on its own."""
import datetime as dt
from types import SimpleNamespace

import pytest


SLOT = dt.datetime(2026, 11, 23, 0, 30, tzinfo=dt.UTC)  # 06:00 IST


def _ctx(run_type):
    ti = SimpleNamespace(dag_id="delivery_fanout", task_id="prepare_send_queue", run_id=f"{run_type}__x",
                         map_index=-1, try_number=1)
    return {"ti": ti, "dag_run": SimpleNamespace(dag_id="delivery_fanout", run_id=ti.run_id, run_type=run_type,
                                                 run_after=SLOT)}


class FakeTI:
    """The XCom side of a task instance, as the late-start tasks use it."""

    def __init__(self, xcoms=None):
        self.dag_id, self.task_id, self.run_id, self.map_index, self.try_number = (
            "delivery_fanout", "check_start_time", "scheduled__x", -1, 1)
        self.xcoms = dict(xcoms or {})

    def xcom_push(self, key, value):
        self.xcoms[(self.task_id, key)] = value

    def xcom_pull(self, task_ids, key="return_value"):
        return self.xcoms.get((task_ids, key))


def _late_ctx(run_type, slot=SLOT, xcoms=None):
    ti = FakeTI(xcoms)
    return {"ti": ti, "dag_run": SimpleNamespace(dag_id="delivery_fanout", run_id=ti.run_id, run_type=run_type,
                                                 run_after=slot)}


@pytest.mark.parametrize("run_type, late_by, late", [
    ("scheduled", dt.timedelta(hours=8), True),
    ("scheduled", dt.timedelta(seconds=1801), True),
    ("scheduled", dt.timedelta(seconds=1800), False),   # exactly the limit is on time
    ("scheduled", dt.timedelta(seconds=5), False),
    ("manual", dt.timedelta(days=3), False),             # a person's run is already a decision
    ("backfill", dt.timedelta(days=3), False),
    ("asset_triggered", dt.timedelta(days=3), False),
])
def test_lateness_only_of_scheduled_runs_beyond_the_limit(run_type, late_by, late):
    from airflow.sdk.api.datamodels._generated import DagRunType

    from include.delivery.late_start import lateness

    for rt in (run_type, *([DagRunType(run_type)] if run_type != "asset_triggered" else [])):
        found = lateness(_late_ctx(rt), now=SLOT + late_by, max_late_s=1800)
        assert (found is not None) is late, (rt, late_by)
        if found:
            assert found.minutes == int(late_by.total_seconds() // 60)


@pytest.mark.parametrize("payload, choice, by, send", [
    ({"chosen_options": ["Send now"], "responded_by_user": {"id": "7", "name": "asha"}}, "Send now", "asha", True),
    ({"chosen_options": ["Skip today"], "responded_by_user": {"id": "7", "name": "asha"}}, "Skip today", "asha", False),
    ({"chosen_options": ["Skip today"], "responded_by_user": None}, "Skip today", None, False),   # the timeout
    ({"chosen_options": ["Send now"], "responded_by_user": None}, "Send now", None, False),      # nobody: no send
])
def test_the_on_call_answer(payload, choice, by, send):
    from include.delivery.late_start import Decision

    decision = Decision.from_payload(payload)
    assert (decision.choice, decision.by, decision.send) == (choice, by, send)


@pytest.mark.parametrize("payload", [{"chosen_options": []}, {"chosen_options": ["Send now", "Skip today"]},
                                     {"chosen_options": ["Send later"]}])
def test_an_answer_outside_the_options_is_refused(payload):
    from include.delivery.late_start import Decision

    with pytest.raises(ValueError, match="not one of"):
        Decision.from_payload(payload)


def test_a_late_scheduled_run_pages_and_asks_on_call(sandbox):
    from airflow.sdk.api.datamodels._generated import DagRunType

    from include.delivery import late_start

    ctx = _late_ctx(DagRunType.SCHEDULED)
    assert late_start.check_start_time(ctx, now=SLOT + dt.timedelta(hours=8)) == "ask_on_call_to_send_late"
    assert ctx["ti"].xcoms[("check_start_time", "lateness")]["minutes"] == 480
    posts = sandbox.slack_posts()
    assert len(posts) == 1
    text = posts[0]["payload"]["text"]
    assert text.startswith("[P0]") and "480 min late" in text and "until on-call decides" in text
    assert "required_actions" in str(posts[0]["payload"]["blocks"])


def test_an_on_time_run_goes_straight_to_the_send_queue(sandbox):
    from include.delivery import late_start

    ctx = _late_ctx("scheduled")
    assert late_start.check_start_time(ctx, now=SLOT + dt.timedelta(seconds=30)) == "prepare_send_queue"
    assert late_start.require_decision(ctx) is None  # the check's verdict counts, not the clock now
    assert sandbox.slack_posts() == []


def test_the_send_queue_of_a_late_run_needs_a_persons_send_now():
    from include.delivery import late_start

    late = {("check_start_time", "lateness"): {"late": True, "minutes": 95}}
    with pytest.raises(late_start.LateStart, match="nobody chose 'Send now'"):
        late_start.require_decision(_late_ctx("scheduled", xcoms=late))
    timed_out = {**late, ("ask_on_call_to_send_late", "return_value"): {"chosen_options": ["Skip today"],
                                                                        "responded_by_user": None}}
    with pytest.raises(late_start.LateStart):
        late_start.require_decision(_late_ctx("scheduled", xcoms=timed_out))
    approved = {**late, ("ask_on_call_to_send_late", "return_value"): {"chosen_options": ["Send now"],
                                                                       "responded_by_user": {"name": "asha"}}}
    assert late_start.require_decision(_late_ctx("scheduled", xcoms=approved)) == "asha"
    assert late_start.act_on_answer(_late_ctx("scheduled", xcoms=approved)) == "prepare_send_queue"
    assert late_start.act_on_answer(_late_ctx("scheduled", xcoms=timed_out)) == "skip_late_run"
    # Without check_start_time upstream the guard measures the lateness itself.
    old = _late_ctx("scheduled", slot=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    with pytest.raises(late_start.LateStart):
        late_start.require_decision(old)


def test_a_skipped_late_run_is_audited_with_who_decided(app_db, sandbox):
    from include.delivery import late_start
    from tests.world import rows

    for by, actor in (("asha", "asha"), (None, "nobody (timeout)")):
        xcoms = {("ask_on_call_to_send_late", "return_value"): {
            "chosen_options": ["Skip today"], "responded_by_user": {"name": by} if by else None}}
        out = late_start.skip_late_run(app_db, _late_ctx("scheduled", xcoms=xcoms), dt.date(2026, 11, 23))
        assert out["sent"] == 0 and out["decided_by"] == by
        audit = rows(app_db, "SELECT actor, action, target, reason FROM audit_log ORDER BY audit_id DESC LIMIT 1")[0]
        assert (audit.actor, audit.action, audit.target) == (actor, "late_fanout_skipped", "2026-11-23")
    titles = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert sum("Late fan-out for 2026-11-23 skipped" in t for t in titles) == 2


def test_acting_user_of_a_scheduled_run_is_the_scheduler():
    from airflow.sdk.api.datamodels._generated import DagRunType

    from include.core.dagkit import acting_user

    ctx = _ctx(DagRunType.SCHEDULED)
    assert acting_user(ctx) == "scheduler"
    assert acting_user(_ctx(DagRunType.MANUAL)) == "airflow-operator"


def test_the_task_body_fails_without_retries(sandbox, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from include.delivery import fanout as delivery
    from include.delivery.fanout import tasks

    monkeypatch.setattr(tasks, "prepare_fanout", lambda *a: pytest.fail("must not queue anything"))
    ctx = _late_ctx("scheduled", slot=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    with pytest.raises(AirflowFailException, match="min after its slot"):
        delivery.run_prepare_send_queue(ctx, dt.date(2026, 11, 23), scheduled_dag=True)


@pytest.mark.parametrize("requested, message", [
    (dt.date(2026, 11, 22), "ops_backfill_delivery"),   # yesterday: a backfill, audited with a reason
    (dt.date(2026, 11, 24), "in the future"),           # tomorrow: nothing to deliver yet
    (dt.date(2025, 11, 23), "not today"),
])
def test_delivery_fanout_delivers_today_only(requested, message):
    from include.delivery.fanout import refuse_dates_other_than_today

    refuse_dates_other_than_today(dt.date(2026, 11, 23), dt.date(2026, 11, 23))  # today passes
    with pytest.raises(ValueError, match=message):
        refuse_dates_other_than_today(requested, dt.date(2026, 11, 23))


def test_airflows_generic_backfill_of_delivery_fanout_is_refused():
    """Only ops_backfill_delivery (reason, audit, archived-date check) delivers a past date."""
    from include.delivery.fanout import refuse_generic_backfill

    refuse_generic_backfill(_ctx("manual"))  # an operator's run of today passes
    refuse_generic_backfill(_ctx("scheduled"))
    with pytest.raises(ValueError, match="ops_backfill_delivery"):
        refuse_generic_backfill(_ctx("backfill"))
