"""A scheduled fan-out that starts long after 06:00 (scheduler down, or a stack started at 14:00: with
catchup=False Airflow still runs the most recent missed slot) must not send the morning pack on its own."""
import datetime as dt
from types import SimpleNamespace

import pytest

from include.core import config
from include.delivery.fanout import LateStart, refuse_late_scheduled_start

SLOT = dt.datetime(2026, 11, 23, 0, 30, tzinfo=dt.UTC)  # 06:00 IST


def _ctx(run_type):
    ti = SimpleNamespace(dag_id="delivery_fanout", task_id="prepare_send_queue", run_id=f"{run_type}__x",
                         map_index=-1, try_number=1)
    return {"ti": ti, "dag_run": SimpleNamespace(dag_id="delivery_fanout", run_id=ti.run_id, run_type=run_type,
                                                 run_after=SLOT)}


def test_a_scheduled_run_hours_late_sends_nothing_and_pages(sandbox):
    from airflow.sdk.api.datamodels._generated import DagRunType

    # The Task SDK hands the run type as an enum whose str() is 'DagRunType.SCHEDULED'.
    with pytest.raises(LateStart, match="ops_backfill_delivery"):
        refuse_late_scheduled_start(_ctx(DagRunType.SCHEDULED), now=SLOT + dt.timedelta(hours=8))
    posts = sandbox.slack_posts()
    assert len(posts) == 1
    text = posts[0]["payload"]["text"]
    assert text.startswith("[P0]") and "480 min late" in text
    assert "ops_backfill_delivery" in str(posts[0]["payload"]["blocks"])


def test_a_scheduled_run_a_little_late_still_sends(sandbox):
    refuse_late_scheduled_start(_ctx("scheduled"), now=SLOT + dt.timedelta(seconds=config.FANOUT_MAX_LATE_START_S))
    assert sandbox.slack_posts() == []


def test_operators_runs_are_never_refused(sandbox):
    from airflow.sdk.api.datamodels._generated import DagRunType

    for run_type in ("manual", "backfill", DagRunType.MANUAL):
        refuse_late_scheduled_start(_ctx(run_type), now=SLOT + dt.timedelta(days=3))
    assert sandbox.slack_posts() == []


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
    ctx = _ctx("scheduled")
    ctx["dag_run"].run_after = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
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
