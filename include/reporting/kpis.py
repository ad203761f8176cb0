"""Delivery KPIs of a business date, overall, per segment and per sending number.

Pure functions over two DataFrames (outcomes: one row per planned advisor; attempts: one row per API
call), so the figures can be checked against a hand-computed fixture without a database.

Definitions (also in the README):
* accepted = the API returned a wamid (status accepted, sent, delivered or read);
* delivered = delivered or read (read implies delivered);
* delivery rate = delivered / (planned - skipped), skipped being DNC or opted out at send time;
* latency = delivered_at - accepted_at over delivered messages (p50, p95);
* delivered within SLO = share of accepted messages delivered within 5 minutes of acceptance;
* API p95 = 95th percentile of the send request latency over all attempts that got an answer.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from include.core import config
from include.core.db import query

ACCEPTED = ("accepted", "sent", "delivered", "read")
DELIVERED = ("delivered", "read")
OUTCOME_COLUMNS = ["business_date", "advisor_id", "external_ref", "segment", "shard", "phone_number_id",
                   "content_source", "template_name", "status", "attempts", "wamid", "error_code", "error_title",
                   "skip_reason", "api_latency_ms", "queued_at", "accepted_at", "sent_at", "delivered_at", "read_at",
                   "failed_at"]


def load_outcomes(engine: Engine, business_date: dt.date) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(query("report/outcomes"), {"business_date": business_date}).fetchall()
    df = pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
    for col in ("queued_at", "accepted_at", "sent_at", "delivered_at", "read_at", "failed_at"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return df


def load_attempts(engine: Engine, business_date: dt.date) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(query("report/attempts"), {"business_date": business_date}).fetchall()
    df = pd.DataFrame(rows, columns=["at", "phone_number_id", "outcome", "error_code", "latency_ms"])
    df["at"] = pd.to_datetime(df["at"], utc=True)
    return df


def _pct(values: pd.Series, q: float) -> float | None:
    values = values.dropna()
    return round(float(values.quantile(q)), 2) if len(values) else None


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def summarise(df: pd.DataFrame, attempts: pd.DataFrame | None = None) -> dict[str, Any]:
    status = df["status"]
    planned = len(df)
    accepted = int(status.isin(ACCEPTED).sum())
    delivered_mask = status.isin(DELIVERED)
    delivered = int(delivered_mask.sum())
    skipped = int((status == "skipped").sum())
    failed = df[status == "failed"]
    # Webhook timestamps have 1-second resolution, accepted_at has microseconds: clip the artefact at 0.
    latency = (df.loc[delivered_mask, "delivered_at"] - df.loc[delivered_mask, "accepted_at"]).dt.total_seconds()
    latency = latency.clip(lower=0)
    within = int((latency <= config.DELIVERED_WITHIN_SLO_S).sum())
    out: dict[str, Any] = {
        "planned": planned, "accepted": accepted, "delivered": delivered, "read": int((status == "read").sum()),
        "failed": len(failed), "skipped": skipped,
        "unresolved": int(status.isin(("queued", "sending", "unknown", "not_queued")).sum()),
        "failed_by_error_code": {str(int(k)): int(v) for k, v in failed["error_code"].value_counts().items()},
        "skipped_by_reason": {str(k): int(v) for k, v in df.loc[status == "skipped", "skip_reason"]
                              .value_counts().items()},
        "delivery_rate": _ratio(delivered, planned - skipped),
        "accepted_rate": _ratio(accepted, planned - skipped),
        "latency_p50_s": _pct(latency, 0.50), "latency_p95_s": _pct(latency, 0.95),
        "delivered_within_5min_ratio": _ratio(within, accepted),
    }
    if attempts is not None:
        out["api_p95_latency_ms"] = _pct(attempts["latency_ms"].astype("float64"), 0.95)
        out["api_attempts"] = len(attempts)
    return out


def compute(outcomes: pd.DataFrame, attempts: pd.DataFrame) -> dict[str, Any]:
    by_segment = {str(seg): summarise(g) for seg, g in outcomes.groupby("segment", sort=True)}
    by_number = {str(num): summarise(g, attempts[attempts["phone_number_id"] == num])
                 for num, g in outcomes.groupby("phone_number_id", sort=True)}
    overall = summarise(outcomes, attempts)
    overall["slo_delivered_within_5min_met"] = (
        overall["delivered_within_5min_ratio"] is not None
        and overall["delivered_within_5min_ratio"] >= config.DELIVERED_WITHIN_SLO_RATIO)
    return {"overall": overall, "by_segment": by_segment, "by_number": by_number}


def send_rate_per_minute(attempts: pd.DataFrame) -> pd.DataFrame:
    """API calls per minute (all outcomes) and accepted per minute."""
    if attempts.empty:
        return pd.DataFrame(columns=["minute", "attempts", "accepted"])
    minute = attempts["at"].dt.floor("min")
    grouped = attempts.assign(minute=minute, ok=attempts["outcome"].eq("accepted")).groupby("minute")
    return grouped.agg(attempts=("outcome", "size"), accepted=("ok", "sum")).reset_index()
