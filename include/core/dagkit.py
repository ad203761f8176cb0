"""Shared DAG conventions: default args (owner, retries, failure alerts), schedules in IST, the business-date
Param, the acting user and the run type from the task context. The date itself is resolved in include/core/dates.py."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from include.core import config
from include.core.alerting import on_task_failure
from include.core.dates import ServedDate


def default_args(**overrides: Any) -> dict[str, Any]:
    args = {
        "owner": config.DAG_OWNER,
        "retries": config.DEFAULT_RETRIES,
        "retry_delay": dt.timedelta(seconds=config.DEFAULT_RETRY_DELAY_S),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=5),
        "on_failure_callback": on_task_failure,
    }
    args.update(overrides)
    return args


def ist_cron(cron: str):
    from airflow.sdk import CronTriggerTimetable

    return CronTriggerTimetable(cron, timezone=config.TIMEZONE_NAME)


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
