"""What the cockpit shows for one business date, read from the app database in one snapshot.

Plain functions over an engine and a date (no Airflow, no HTTP): `snapshot(engine, day)` returns a JSON-ready dict
the page renders and polls. The SQL is in sql/queries/cockpit/ plus the report's own `report/trend`.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy.engine import Engine

from include.core import config
from include.core.db import query

SEND_RATE_WINDOW_S = 10
# The DAGs of a delivery morning, linked from the cockpit even before they record anything.
MORNING_DAGS = ("pre_delivery_check", "delivery_fanout", "post_delivery_report")


def worst_severity(severities) -> str:
    """The worst of severity values as stored ("P0" … "info"), by the alerting's own rank."""
    from include.core.alerting import Severity, worst

    return worst([Severity(s) for s in severities]).value


def _iso(value: Any) -> Any:
    """JSON-ready; every timestamp in IST, the operators' clock."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(config.IST).isoformat(timespec="seconds")
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def _records(result) -> list[dict[str, Any]]:
    return [{k: _iso(v) for k, v in row._mapping.items()} for row in result]


def failure_class(code: int | None) -> str:
    from include.whatsapp.client import classify

    return "unknown" if code is None else classify(code).value


def progress(conn, day: dt.date, numbers: dict[str, dict]) -> list[dict[str, Any]]:
    """One row per shard and number: the funnel, failures by class, skips by reason, send rate vs limit."""
    rows = _records(conn.execute(query("cockpit/progress"), {"business_date": day}))
    failed: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    skipped: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in conn.execute(query("cockpit/outcome_reasons"), {"business_date": day}):
        key = (r.shard, r.phone_number_id)
        if r.status == "failed":
            failed[key][failure_class(r.error_code)] += r.n
        else:
            skipped[key][r.skip_reason or "unknown"] += r.n
    rates = {r.phone_number_id: r for r in conn.execute(query("cockpit/send_rate"),
                                                        {"business_date": day, "window_s": SEND_RATE_WINDOW_S})}
    for row in rows:
        key = (row["shard"], row["phone_number_id"])
        row["failed_by_class"] = dict(sorted(failed[key].items()))
        row["skipped_by_reason"] = dict(sorted(skipped[key].items()))
        rate = rates.get(row["phone_number_id"])
        row["send_rate_mps"] = round(rate.attempts / SEND_RATE_WINDOW_S, 1) if rate else 0.0
        number = numbers.get(row["phone_number_id"], {})
        row["limit_mps"] = number.get("throughput_mps")
        row["display_phone"] = number.get("display_phone")
        row["role"] = number.get("role")
    return rows


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("planned", "queued_total", "in_flight", "accepted", "delivered", "read", "failed", "skipped")
    out: dict[str, Any] = {k: sum(r[k] for r in rows) for k in keys}
    by_class: dict[str, int] = defaultdict(int)
    by_reason: dict[str, int] = defaultdict(int)
    for r in rows:
        for k, v in r["failed_by_class"].items():
            by_class[k] += v
        for k, v in r["skipped_by_reason"].items():
            by_reason[k] += v
    out["failed_by_class"] = dict(sorted(by_class.items()))
    out["skipped_by_reason"] = dict(sorted(by_reason.items()))
    out["send_rate_mps"] = round(sum(r["send_rate_mps"] for r in rows), 1)
    return out


def trend(conn, day: dt.date, days: int = config.REPORT_TREND_DAYS) -> list[dict[str, Any]]:
    """The report's 14-day funnel (report/trend) with accepted and delivered ratios per day."""
    out = []
    for r in _records(conn.execute(query("report/trend"), {"business_date": day, "days": days})):
        planned = r["planned"] or 0
        r["accepted_ratio"] = round(r["accepted"] / planned, 4) if planned else None
        r["delivered_ratio"] = round(r["delivered"] / planned, 4) if planned else None
        out.append(r)
    return out


def snapshot(engine: Engine, day: dt.date) -> dict[str, Any]:
    """Everything the cockpit shows for `day`, read in one repeatable-read transaction (one consistent view)."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        switch = conn.execute(query("ops/sending_state")).one()
        numbers = _records(conn.execute(query("cockpit/numbers")))
        by_id = {n["phone_number_id"]: n for n in numbers}
        checks = _records(conn.execute(query("cockpit/checks"), {"business_date": day}))
        runs = _records(conn.execute(query("cockpit/runs"), {"business_date": day}))
        findings = _records(conn.execute(query("cockpit/findings"), {"business_date": day}))
        alerts = _records(conn.execute(query("cockpit/alerts"), {"business_date": day}))
        rows = progress(conn, day, by_id)
        templates = _records(conn.execute(query("cockpit/templates")))
        history = trend(conn, day)
        changes = _records(conn.execute(query("cockpit/sending_audit"), {"limit": 5}))
        now = conn.execute(query("cockpit/now")).scalar_one()
    return {
        "business_date": day.isoformat(),
        "as_of": _iso(now),
        "kill_switch": {"paused": switch.paused, "reason": switch.reason, "changed_by": switch.changed_by,
                        "changed_at": _iso(switch.changed_at),
                        "recent_changes": changes},
        "checks": checks,
        "checks_worst_severity": worst_severity(c["severity"] for c in checks if not c["ok"]) if checks else None,
        "runs": runs,
        "findings": findings,
        "findings_worst_severity": worst_severity(f["severity"] for f in findings) if findings else None,
        "alerts": alerts,
        "progress": rows,
        "totals": totals(rows),
        "send_rate_window_s": SEND_RATE_WINDOW_S,
        "numbers": numbers,
        "templates": templates,
        "trend": history,
    }
