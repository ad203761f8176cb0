"""The data the DAGs hand to each other, as Airflow Assets: one home for their names and what their events carry.

* `rendered_packs` (nightly_content_window) and `delivery_plan` (pre_delivery_check) are emitted for lineage and
  the UI's asset graph.
* `approved_packs` is **consumed**: `nightly_content_window` runs on its cron *or* when packs are approved in bulk
  after the window (the approvers' 21:30 offer, `ops_bulk_approve`), so the new approvals are rendered and QC'd
  before 05:50 without anyone remembering to re-run it. The event's extra names the business date, and the
  asset-triggered run serves that date (include/core/dates.py).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset

RENDERED_PACKS = Asset("rendered_packs")
DELIVERY_PLAN = Asset("delivery_plan")
APPROVED_PACKS = Asset("approved_packs")


def approved_packs_extra(business_date: dt.date | str, approved: int, by: str) -> dict[str, Any]:
    return {"business_date": str(business_date), "approved": int(approved), "by": by}


def announce_approved_packs(context: Mapping[str, Any], result: Mapping[str, Any] | None) -> dict:
    """The `approved_packs` event of a bulk approval that approved something (the task must declare the outlet);
    nothing approved → the task is skipped and no event is emitted (no pointless re-render)."""
    from airflow.sdk.exceptions import AirflowSkipException

    approved = list((result or {}).get("approved") or [])
    if not approved:
        raise AirflowSkipException("nothing was approved: nothing new to render")
    extra = approved_packs_extra(result["business_date"], len(approved), str(result.get("decided_by") or
                                                                               result.get("actor") or "unknown"))
    context["outlet_events"][APPROVED_PACKS].extra = extra
    return extra


def business_date_of_triggering_event(context: Mapping[str, Any]) -> str | None:
    """The business date an asset-triggered run serves: the newest triggering event's `business_date` extra."""
    events = context.get("triggering_asset_events") or {}
    dates = []
    try:
        for evs in events.values():
            for ev in evs or []:
                extra = getattr(ev, "extra", None) or {}
                if extra.get("business_date"):
                    dates.append((str(getattr(ev, "timestamp", "")), str(extra["business_date"])))
    except (AttributeError, TypeError):
        return None
    return max(dates)[1] if dates else None
