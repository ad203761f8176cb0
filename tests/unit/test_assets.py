"""The asset contract between the DAGs: which DAG consumes which asset, and the date an asset-triggered run serves."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from include.core.assets import APPROVED_PACKS, announce_approved_packs, business_date_of_triggering_event
from include.core.dates import TOMORROW, business_date

RUN_AFTER = dt.datetime(2026, 12, 1, 16, 5, tzinfo=dt.UTC)  # 21:35 IST


def _ctx(events=None, params=None):
    return {"params": params or {}, "dag_run": SimpleNamespace(run_after=RUN_AFTER),
            "triggering_asset_events": events or {}}


def _event(day, ts):
    return SimpleNamespace(extra={"business_date": day, "approved": 3, "by": "meera"}, timestamp=ts)


@pytest.mark.parametrize("events, params, expected", [
    ({}, {}, dt.date(2026, 12, 2)),                                                       # cron: tomorrow
    ({APPROVED_PACKS: [_event("2026-12-05", "2026-12-01T16:04")]}, {}, dt.date(2026, 12, 5)),  # the event's date
    ({APPROVED_PACKS: [_event("2026-12-05", "2026-12-01T16:04"), _event("2026-12-06", "2026-12-01T16:05")]}, {},
     dt.date(2026, 12, 6)),                                                               # the newest event
    ({APPROVED_PACKS: [_event("2026-12-05", "2026-12-01T16:04")]}, {"business_date": "2026-12-09"},
     dt.date(2026, 12, 9)),                                                               # an operator's Param wins
    ({APPROVED_PACKS: [SimpleNamespace(extra={}, timestamp="x")]}, {}, dt.date(2026, 12, 2)),  # no date: the rule
])
def test_an_asset_triggered_run_serves_the_events_date(events, params, expected):
    ctx = _ctx(events, params)
    assert business_date(ctx, TOMORROW) == expected
    if not params and not any(e.extra for evs in events.values() for e in evs):
        assert business_date_of_triggering_event(ctx) is None


def test_only_an_approval_that_approved_something_emits_the_event():
    from airflow.sdk.exceptions import AirflowSkipException

    outlet = SimpleNamespace(extra=None)
    ctx = {"outlet_events": {APPROVED_PACKS: outlet}}
    with pytest.raises(AirflowSkipException):
        announce_approved_packs(ctx, {"business_date": "2026-12-02", "approved": [], "decided_by": "meera"})
    assert outlet.extra is None
    out = announce_approved_packs(ctx, {"business_date": "2026-12-02", "approved": ["a", "b"], "decided_by": "meera"})
    assert outlet.extra == out == {"business_date": "2026-12-02", "approved": 2, "by": "meera"}


def test_the_nightly_window_consumes_approved_packs_and_both_bulk_approvals_emit_it():
    from airflow.dag_processing.dagbag import DagBag

    from tests.support import ROOT

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    nightly = bag.dags["nightly_content_window"]
    assert [a.name for a in nightly.timetable.asset_condition.objects] == ["approved_packs"]
    assert nightly.timetable.timetable.expression == "30 20 * * *"  # and still its 20:30 IST cron
    for dag_id in ("ops_bulk_approve", "nightly_bulk_approval_offer"):
        task = bag.dags[dag_id].get_task("announce_newly_approved_packs")
        assert [o.name for o in task.outlets] == ["approved_packs"], dag_id
