"""Airflow notifier classes for the project's two kinds of callbacks, both posting through the one alerting path
(include/core/alerting.py): a task that failed, and a DAG run that missed its deadline.

* `TaskFailureNotifier` is every task's `on_failure_callback` (attached per task through `default_args`, never
  at DAG level: DAG-level notifiers crash under `dag.test()`, apache/airflow#64649). A refused operator input is
  told to the operator in the task log and pages nobody.
* `DeadlineMissedNotifier` is the callback of Airflow's Deadline Alerts (experimental since 3.1): the triggerer
  awaits it with the simplified context Airflow gives deadline callbacks (the `dag_run` as the REST API returns
  it and the `deadline`). The in-task SLA checks stay: they do not depend on an experimental feature.
* `DecisionRequestedNotifier` tells the people who must answer a human-in-the-loop task (on-call, the approvers)
  that it waits for them, with the link to its Required Actions page and what happens without an answer.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseNotifier


class TaskFailureNotifier(BaseNotifier):
    """A failed task: a P1 with the exception (an operator's refused input: a log line for the operator)."""

    def notify(self, context: Mapping[str, Any]) -> None:
        from include.core.alerting import on_task_failure

        on_task_failure(context)


class DeadlineMissedNotifier(BaseNotifier):
    """A DAG run still unfinished at its deadline: a page with the run, the deadline and what the runbook says."""

    template_fields = ("deadline_label", "runbook")

    def __init__(self, deadline_label: str, runbook: str = "", severity: str = "P0", context=None):
        super().__init__(context=context)
        self.deadline_label = deadline_label
        self.runbook = runbook
        self.severity = severity

    def notify(self, context: Mapping[str, Any]) -> None:
        from include.core.alerting import Alert, RunRef, Severity, post

        run = _as_dict(context.get("dag_run"))
        deadline = _as_dict(context.get("deadline"))
        dag_id, run_id = run.get("dag_id"), run.get("dag_run_id") or run.get("run_id")
        facts = {"deadline": self.deadline_label, "deadline time (UTC)": _text(deadline.get("deadline_time")),
                 "run state": run.get("state", "unknown"), "run started": _text(run.get("start_date"))}
        if self.runbook:
            facts["runbook"] = self.runbook
        post(Alert(Severity(self.severity), f"{dag_id} missed its deadline ({self.deadline_label})", facts,
                   RunRef(dag_id=dag_id, run_id=run_id)))

    async def async_notify(self, context: Mapping[str, Any]) -> None:
        # The triggerer's event loop must not block on Slack: post from a worker thread.
        await asyncio.to_thread(self.notify, context)


class DecisionRequestedNotifier(BaseNotifier):
    """Posted when a human-in-the-loop task starts waiting: who must decide, the options, the link, the default."""

    template_fields = ("title", "if_unanswered")

    def __init__(self, title: str, if_unanswered: str, severity: str = "info", conn_id: str | None = None,
                 context=None):
        super().__init__(context=context)
        self.title = title
        self.if_unanswered = if_unanswered
        self.severity = severity
        self.conn_id = conn_id

    def notify(self, context: Mapping[str, Any]) -> None:
        from include.core import config
        from include.core.alerting import Alert, RunRef, Severity, post

        task = context.get("task")
        ref = RunRef.from_context(context)
        facts = {"options": " · ".join(getattr(task, "options", None) or []),
                 "if nobody answers": self.if_unanswered,
                 "answer in the Airflow UI": ref.required_actions_url or "n/a"}
        post(Alert(Severity(self.severity), self.title, facts, ref), conn_id=self.conn_id or config.SLACK_CONN_ID)


def _as_dict(value: Any) -> dict:
    if isinstance(value, Mapping):
        return dict(value)
    return {k: getattr(value, k) for k in ("dag_id", "run_id", "state", "start_date", "deadline_time")
            if hasattr(value, k)}


def _text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value) if value not in (None, "") else "n/a"
