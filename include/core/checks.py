"""Check results of every runbook step: a severity and the failing items, stored in `check_results`, and the one
summary builder the DAGs' summary tasks post to Slack (the worst severity decides paging)."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Engine

from include.core.alerting import Alert, RunRef, Severity, post, worst
from include.core.db import query


@dataclass
class CheckResult:
    name: str
    severity: Severity = Severity.INFO   # info means passed
    summary: str = "ok"
    items: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.severity in (Severity.INFO,)

    def escalate(self, severity: Severity, item: str) -> None:
        """Record a failing item; the check's severity becomes the worst seen."""
        self.items.append(item)
        self.severity = worst([self.severity, severity])

    def as_dict(self) -> dict:
        d = asdict(self)
        d["severity"] = self.severity.value
        d["ok"] = self.ok
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CheckResult:
        return cls(d["name"], Severity(d["severity"]), d.get("summary", ""), list(d.get("items") or []),
                   dict(d.get("facts") or {}))


def record(engine: Engine, result: CheckResult, business_date: dt.date, dag_id: str, run_id: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(query("checks/insert"), {
            "business_date": business_date, "dag_id": dag_id, "run_id": run_id, "check_name": result.name,
            "severity": result.severity.value, "ok": result.ok, "summary": result.summary,
            "items": json.dumps(result.items[:500])})


def finish(engine: Engine, result: CheckResult, business_date: dt.date, context: dict | None,
           default_dag_id: str) -> dict:
    """Record a task's check result against its run and return it as the task's XCom."""
    ti = (context or {}).get("ti")
    record(engine, result, business_date, getattr(ti, "dag_id", default_dag_id), getattr(ti, "run_id", None))
    return result.as_dict()


def collect(reported: Mapping[str, dict | None], *, missing: Severity = Severity.P1,
            optional: Collection[str] = ()) -> list[CheckResult]:
    """The results a summary task was handed by the DAG wiring, keyed by task id. A task that did not report
    (it failed, or an upstream did) is itself a finding of severity `missing`; `optional` ones (a branch not
    taken, a checkpoint that does not run) are left out when they did not report."""
    out = []
    for task_id, value in reported.items():
        if value:
            out.append(CheckResult.from_dict(value))
        elif task_id not in optional:
            out.append(CheckResult(task_id, missing, "did not report; see its log",
                                   [f"{task_id} did not complete; see its log"]))
    return out


def summarise(title: str, business_date: dt.date, results: Sequence[CheckResult], source: RunRef, *,
              facts: Mapping[str, Any] | None = None, severities: Sequence[Severity] = (),
              details: Sequence[str] = ()) -> Alert:
    """The one summary every DAG posts: headline facts, one line per check, the failing items, and the worst
    severity (of the checks and of any `severities` the caller adds) deciding whether it pages. The same worst
    severity and title become the run's note in the Airflow UI (include/core/run_notes.py)."""
    severity = worst([r.severity for r in results] + list(severities) or [Severity.INFO])
    failed = [r for r in results if not r.ok]
    lines: dict[str, Any] = {"business date": business_date.isoformat(), **(facts or {})}
    if results:
        lines["checks"] = f"{len(results) - len(failed)}/{len(results)} passed"
    for r in results:
        lines[r.name] = f"{'✅' if r.ok else r.severity.value}: {r.summary}"
    items = [f"[{r.severity.value}] {r.name}: {item}" for r in failed for item in r.items] + list(details)
    verdict = "all checks passed" if not failed and severity is Severity.INFO else (
        f"{len(failed)} check(s) need attention" if failed else f"worst severity {severity.value}")
    alert = Alert(severity, f"{title} for {business_date}: {verdict}", lines, source, items)
    post(alert)
    from include.core.run_notes import write_run_note

    write_run_note(source, severity, alert.title)
    return alert
