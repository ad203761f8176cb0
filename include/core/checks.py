"""Check results shared by the pre-delivery check and the nightly window: a severity, the failing
items, stored in `check_results` and summarised to Slack with the worst severity deciding paging."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
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


def summarise(results: list[CheckResult], title: str, source: RunRef, business_date: dt.date) -> Alert:
    """One Slack message for all checks; the worst severity decides whether it pages."""
    severity = worst([r.severity for r in results])
    failed = [r for r in results if not r.ok]
    facts: dict[str, Any] = {"business date": business_date.isoformat(),
                             "checks": f"{len(results) - len(failed)}/{len(results)} passed"}
    for r in results:
        facts[r.name] = f"{'✅' if r.ok else r.severity.value}: {r.summary}"
    details = [f"[{r.severity.value}] {r.name}: {item}" for r in failed for item in r.items]
    heading = f"{title}: all checks passed" if not failed else f"{title}: {len(failed)} check(s) need attention"
    alert = Alert(severity, heading, facts, source, details)
    post(alert)
    return alert
