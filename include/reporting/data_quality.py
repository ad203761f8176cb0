"""Data-quality checks on a date's delivery outcomes with Great Expectations (GX Core 1.x).

GX runs inside the task (the official provider 1.0.0 would downgrade Airflow 3.3.2 to 3.3.0: see README), on pandas
frames loaded here at run time, never at DAG parse time. Each expectation carries a name an
operator understands; a failure names it and shows sample rows (advisor ids and the bad values).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from include.core import config
from include.core.db import query

log = logging.getLogger(__name__)

FINAL_STATUSES = ["accepted", "sent", "delivered", "read", "failed", "skipped"]
CLOCK_SKEW_S = -2.0  # webhook timestamps have 1-second resolution; accepted_at is when our API call returned
GX_COLUMNS = ["advisor_id", "planned", "outcome_rows", "accepted_sends", "status", "wamid", "error_code",
              "skip_reason", "accepted_at", "delivered_at", "read_at", "accepted_to_delivered_s",
              "delivered_to_read_s", "sent_to_dnc_or_opted_out", "dnc_source"]


@dataclass(frozen=True)
class Check:
    name: str
    frame: str        # which frame it runs on: "outcomes" or "kpis"
    expectation: Any  # a gx.expectations.* instance
    show: tuple[str, ...]


def load_frames(engine: Engine, business_date: dt.date, delivery_rate: float | None) -> dict[str, pd.DataFrame]:
    with engine.connect() as conn:
        rows = conn.execute(query("report/gx_checks"), {"business_date": business_date}).fetchall()
    return frames_from(pd.DataFrame(rows, columns=GX_COLUMNS), delivery_rate)


def frames_from(outcomes: pd.DataFrame, delivery_rate: float | None) -> dict[str, pd.DataFrame]:
    df = outcomes.copy()
    for col in ("accepted_to_delivered_s", "delivered_to_read_s"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["error_code_matches_status"] = (df["status"] == "failed") == df["error_code"].notna()
    df["sent_to_dnc_or_opted_out"] = df["sent_to_dnc_or_opted_out"].fillna(False).astype(bool)
    kpis = pd.DataFrame([{"advisor_id": "(all)", "delivery_rate": delivery_rate if delivery_rate is not None else 0.0}])
    return {"outcomes": df, "kpis": kpis}


def checks() -> list[Check]:
    E = _gx().expectations
    return [
        Check("every planned advisor has exactly one outcome row", "outcomes",
              E.ExpectColumnValuesToBeBetween(column="outcome_rows", min_value=1, max_value=1), ("outcome_rows",)),
        Check("every outcome row belongs to the plan", "outcomes",
              E.ExpectColumnValuesToBeInSet(column="planned", value_set=[True]), ("planned", "status")),
        Check("statuses are in the allowed set", "outcomes",
              E.ExpectColumnValuesToBeInSet(column="status", value_set=FINAL_STATUSES), ("status",)),
        Check("wamids are unique", "outcomes", E.ExpectColumnValuesToBeUnique(column="wamid"), ("wamid",)),
        Check("no advisor received more than one send per day", "outcomes",
              E.ExpectColumnValuesToBeBetween(column="accepted_sends", min_value=0, max_value=1),
              ("accepted_sends",)),
        Check("timestamps ordered: accepted <= delivered", "outcomes",
              E.ExpectColumnValuesToBeBetween(column="accepted_to_delivered_s", min_value=CLOCK_SKEW_S),
              ("accepted_at", "delivered_at")),
        Check("timestamps ordered: delivered <= read", "outcomes",
              E.ExpectColumnValuesToBeBetween(column="delivered_to_read_s", min_value=CLOCK_SKEW_S),
              ("delivered_at", "read_at")),
        Check("an error code is present if and only if the message failed", "outcomes",
              E.ExpectColumnValuesToBeInSet(column="error_code_matches_status", value_set=[True]),
              ("status", "error_code")),
        Check("DNC and opted-out advisors have zero sends", "outcomes",
              E.ExpectColumnValuesToBeInSet(column="sent_to_dnc_or_opted_out", value_set=[False]),
              ("wamid", "dnc_source")),
        Check(f"delivery rate is at least {config.DELIVERY_RATE_WARNING:.0%}", "kpis",
              E.ExpectColumnValuesToBeBetween(column="delivery_rate", min_value=config.DELIVERY_RATE_WARNING,
                                              max_value=1.0), ("delivery_rate",)),
    ]


def quiet_great_expectations() -> None:
    """Great Expectations logs ~214 INFO lines ("Skipping registering function ...") as it imports, which buried
    our own messages in `build_daily_report_0630`'s log. Its loggers keep WARNING and above; ours are untouched."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level in (logging.NOTSET, logging.DEBUG, logging.INFO):
        gx_logger.setLevel(logging.WARNING)


def _gx():
    """great_expectations, imported quietly: every use goes through here."""
    quiet_great_expectations()
    import great_expectations

    return great_expectations


def _context():
    gx = _gx()

    ctx = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - progress bars are cosmetic; older/newer GX may differ
        pass
    return ctx


def validate(frames: dict[str, pd.DataFrame], sample_size: int = 5) -> dict[str, Any]:
    """Run every check; return per-check results with sample rows, and overall success."""
    gx = _gx()
    ctx = _context()
    source = ctx.data_sources.add_pandas("delivery_outcomes")
    batches = {}
    for name, df in frames.items():
        asset = source.add_dataframe_asset(name)
        batches[name] = asset.add_batch_definition_whole_dataframe(f"{name}_all").get_batch(
            batch_parameters={"dataframe": df})
    results = []
    for check in checks():
        suite = gx.ExpectationSuite(name=check.name)
        suite.add_expectation(check.expectation)
        df = frames[check.frame]
        res = batches[check.frame].validate(suite, result_format={
            "result_format": "COMPLETE", "unexpected_index_column_names": ["advisor_id"]})
        r = res.results[0]
        detail = r.result or {}
        samples = []
        for item in (detail.get("unexpected_index_list") or [])[:sample_size]:
            advisor = item.get("advisor_id")
            row = df[df["advisor_id"] == advisor].head(1)
            shown = {c: (None if pd.isna(v) else str(v)) for c, v in row[list(check.show)].iloc[0].items()} \
                if len(row) else {}
            samples.append({"advisor_id": str(advisor), **shown})
        results.append({"expectation": check.name, "gx_type": r.expectation_config.type, "success": bool(r.success),
                        "unexpected_count": int(detail.get("unexpected_count") or 0),
                        "element_count": int(detail.get("element_count") or len(df)), "samples": samples})
    failed = [r for r in results if not r["success"]]
    return {"success": not failed, "evaluated": len(results), "failed": len(failed), "results": results,
            "gx_version": gx.__version__}


def alert_on_failures(validation: dict, business_date: dt.date, context: dict | None, report_uri: str | None) -> None:
    from include.core.alerting import Alert, RunRef, Severity, post

    for r in validation["results"]:
        if r["success"]:
            continue
        details = [", ".join(f"{k}={v}" for k, v in s.items()) for s in r["samples"]]
        post(Alert(Severity.P1, f"Data-quality check failed for {business_date}: {r['expectation']}",
                   {"unexpected rows": r["unexpected_count"], "rows checked": r["element_count"],
                    "expectation": r["gx_type"], "validation stored at": report_uri or "not stored"},
                   RunRef.from_context(context), details))
