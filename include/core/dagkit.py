"""Shared DAG conventions: default args (owner, retries, failure alerts), schedules in IST, the business-date
Param, the acting user and the run type from the task context. The date itself is resolved in include/core/dates.py."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from include.core import config
from include.core.dates import ServedDate
from include.core.notifiers import TaskFailureNotifier


def default_args(lane: str = "operator", **overrides: Any) -> dict[str, Any]:
    """Every task's defaults. `lane` (config.LANES) sets how much the scheduler favours the task when slots are
    short (the delivery path first, maintenance last) and how long it may run before Airflow kills it."""
    priority, timeout_min = config.LANES[lane]
    args = {
        "owner": config.DAG_OWNER,
        "retries": config.DEFAULT_RETRIES,
        "retry_delay": dt.timedelta(seconds=config.DEFAULT_RETRY_DELAY_S),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=5),
        "on_failure_callback": [TaskFailureNotifier()],
        "priority_weight": priority,
        "weight_rule": "absolute",  # the lane decides, not the number of downstream tasks
        "execution_timeout": dt.timedelta(minutes=timeout_min),
    }
    args.update(overrides)
    return args


# Human-in-the-loop tasks retry at once: on Airflow 3.3.2 an answer given within a second or two of the task parking can
# be lost (the scheduler, handling the parked try's exit, marks the resumed try for retry), and the retry asks again.
HITL_RETRIES = {"retries": 2, "retry_delay": dt.timedelta(seconds=5), "retry_exponential_backoff": 0}


def deadline_alert(minutes_after_slot: int, label: str, runbook: str):
    """A Deadline Alert `minutes_after_slot` after the run's scheduled slot (its logical date), posted by
    `DeadlineMissedNotifier` from the triggerer. Manual runs have no logical date, hence no deadline. None when
    FA_DEADLINE_ALERTS is off (the feature is experimental; the in-task SLA checks do not depend on it)."""
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    if not config.DEADLINE_ALERTS:
        return None
    from include.core.notifiers import DeadlineMissedNotifier

    return DeadlineAlert(reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
                         interval=dt.timedelta(minutes=minutes_after_slot),
                         callback=AsyncCallback(DeadlineMissedNotifier,
                                                kwargs={"deadline_label": label, "runbook": runbook}))


def ist_cron(cron: str):
    from airflow.sdk import CronTriggerTimetable

    return CronTriggerTimetable(cron, timezone=config.TIMEZONE_NAME)


class _TaskFlow:
    """`airflow.sdk.task` with this project's one different default: a task's return value is one XCom.

    TaskFlow infers multiple_outputs from a `-> dict` annotation and then writes one XCom per key, one API call each,
    at the task's end: about 20 sequential writes at every sender's end, 0.7-1.9 s under load (measured). A task whose
    keys feed other tasks' arguments says `multiple_outputs=True` itself. Everything else (`task.branch`,
    `task.short_circuit`, bare `@task`) is Airflow's own."""

    def __call__(self, python_callable: Any = None, **kwargs: Any) -> Any:
        from airflow.sdk import task as sdk_task

        kwargs.setdefault("multiple_outputs", False)
        return sdk_task(python_callable, **kwargs)

    def __getattr__(self, name: str) -> Any:
        from airflow.sdk import task as sdk_task

        return getattr(sdk_task, name)


task = _TaskFlow()


def run_type(dag_run: Any) -> str:
    """'scheduled', 'manual', 'backfill', 'asset_triggered' or ''. The Task SDK's enum prints as
    'DagRunType.SCHEDULED', so compare its value, never its str()."""
    value = getattr(dag_run, "run_type", None)
    return str(getattr(value, "value", value) or "").lower()


def acting_user(context: Mapping[str, Any]) -> str:
    """Who triggered the run (the UI/API user), or the scheduler for scheduled runs."""
    dag_run = context.get("dag_run")
    user = getattr(dag_run, "triggering_user_name", None)
    if user:
        return str(user)
    return "scheduler" if run_type(dag_run) == "scheduled" else "airflow-operator"


def date_param(serves: ServedDate, note: str = ""):
    """The `business_date` Param of a DAG, saying in the trigger form which date an empty value means."""
    from airflow.sdk import Param

    return Param(None, type=["null", "string"], format="date", title="Business date",
                 description=f"YYYY-MM-DD. Empty means {serves.default}.{(' ' + note) if note else ''}")


class OperatorInputError(AirflowFailException):
    """An operator's Params or input were refused (a typo, a wrong date, an empty reason). The task fails at once
    without retrying, and `on_task_failure` tells the operator in the task log instead of paging on-call."""


@contextmanager
def fail_fast_on_bad_input():
    """Turn ValueError (bad operator input) into OperatorInputError: fail now, do not retry, do not page."""
    try:
        yield
    except ValueError as exc:
        raise OperatorInputError(f"bad parameter: {exc}") from exc
