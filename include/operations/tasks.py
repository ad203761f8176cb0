"""Airflow task entry points of the operator DAGs (`ops_*`). Each reads its Params, resolves the business date by
the operator rule (today when empty, never a future date), and calls one audited action; bad input fails the
task at once with a clear message and without paging on-call (`fail_fast_on_bad_input`)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from include.core.dagkit import acting_user, fail_fast_on_bad_input
from include.core.dates import OPERATOR, business_date, parse_business_date
from include.core.db import get_engine


def _params(context: Mapping[str, Any]) -> dict:
    return dict(context.get("params") or {})


def pause_or_resume_sending(paused: bool, context: Mapping[str, Any]) -> dict:
    """ops_pause_sending / ops_resume_sending: flip the kill switch (reason required, audited, told to Slack)."""
    from include.delivery.kill_switch import flip_sending

    p = _params(context)
    with fail_fast_on_bad_input():  # a resume of a budget stop without budget_override_reason is refused here too
        state, _ = flip_sending(get_engine(), paused, p.get("reason", ""), acting_user(context), context,
                                budget_override=None if paused else p.get("budget_override_reason"))
    return {"paused": state.paused, "reason": state.reason, "changed_by": state.changed_by,
            **({"budget_override": state.budget_override} if state.budget_override is not None else {})}


def retry_failed_deliveries(context: Mapping[str, Any]) -> dict:
    """ops_retry_failed_deliveries: re-queue the date's failures with a retryable code."""
    from include.operations.actions import retry_failed_deliveries as retry

    with fail_fast_on_bad_input():
        return retry(get_engine(), business_date(context, OPERATOR), _params(context).get("reason", ""),
                     acting_user(context))


def rotate_number(context: Mapping[str, Any]) -> dict:
    """ops_rotate_number: move a shard from one number to a hot spare."""
    from include.delivery.kill_switch import require_reason
    from include.delivery.numbers import move_between_numbers

    p = _params(context)
    with fail_fast_on_bad_input():
        return move_between_numbers(get_engine(), business_date(context, OPERATOR), p.get("from_number", ""),
                                    p.get("to_number", ""), require_reason(p.get("reason", "")),
                                    acting_user(context))


def override_number_ramp(context: Mapping[str, Any]) -> dict:
    """ops_override_number_ramp: set a ramped number's share, or end its quality cooldown, audited."""
    from include.delivery.cooldown_store import override

    p = _params(context)
    with fail_fast_on_bad_input():
        choice = str(p.get("share_percent") or "").strip().lower()
        end = choice == "end cooldown"
        if not end and choice not in ("0", "25", "50", "75", "100"):
            raise ValueError(f"share_percent must be 0, 25, 50, 75, 100 or 'end cooldown', got {choice!r}")
        return override(get_engine(), str(p.get("number") or "").strip(), None if end else int(choice), end,
                        p.get("reason", ""), acting_user(context))


def settle_unknown_deliveries(context: Mapping[str, Any]) -> dict:
    """ops_settle_unknown_deliveries: resend or close the date's sends of unknown outcome."""
    from include.operations.actions import settle_unknown_deliveries as settle

    p = _params(context)
    with fail_fast_on_bad_input():
        return settle(get_engine(), business_date(context, OPERATOR), p.get("decision", ""), p.get("reason", ""),
                      acting_user(context))


def authorise_backfill(context: Mapping[str, Any]) -> str:
    """ops_backfill_delivery: validate the request and audit it before anything is sent; returns the date."""
    from include.operations.actions import authorise_backfill as authorise

    p = _params(context)
    with fail_fast_on_bad_input():
        return authorise(get_engine(), p.get("business_date"), p.get("reason", ""),
                         acting_user(context))["business_date"]


def bulk_approve(context: Mapping[str, Any]) -> dict:
    """ops_bulk_approve: approve a date's pending low-risk packs in one audited step."""
    from include.content.nightly_window import bulk_approve as approve

    p = _params(context)
    with fail_fast_on_bad_input():
        return approve(get_engine(), parse_business_date(p.get("business_date") or ""), int(p.get("max_risk_level", 1)),
                       p.get("reason", ""), acting_user(context))


# -- ops_run_business_day: nightly → 05:50 → fan-out → reports for one date ---------------------------------------
BUSINESS_DAY_STEPS = (("nightly_content_window", "20:30 nightly window"), ("pre_delivery_check", "05:50 check"),
                      ("fanout", "06:00 fan-out"), ("post_delivery_report", "06:30 report"))


def plan_business_day(context: Mapping[str, Any]) -> dict:
    """What each step of the day is triggered with. Today is delivered by `delivery_fanout`; a past date only by
    `ops_backfill_delivery`, which needs the reason and refuses archived dates; a future date cannot be sent."""
    from include.core.dates import ist_today

    p = _params(context)
    with fail_fast_on_bad_input():
        day = business_date(context, OPERATOR)
        backfill = day < ist_today()
        reason = str(p.get("reason") or "").strip()
        if backfill and len(reason) < 3:
            raise ValueError(f"{day} is a past date: its fan-out is a backfill, and a backfill needs a reason")
        jitter = int(p.get("jitter_window_s") or 0) or None
    run_id = str((context.get("dag_run") and context["dag_run"].run_id) or "manual")
    common = {"business_date": day.isoformat()}
    return {
        "business_date": day.isoformat(),
        "fanout_dag": "ops_backfill_delivery" if backfill else "delivery_fanout",
        "nightly_conf": common,
        "check_conf": common | ({"jitter_window_s": jitter} if jitter else {}),
        "fanout_conf": common | {"honour_jitter": bool(p.get("honour_jitter", True))}
                       | ({"reason": f"business-day run {run_id}: {reason}"} if backfill else {}),
        "report_conf": common | {"checkpoint": "06:30"},
        # The triggered runs' ids, so the summary finds their check results.
        **{f"run_id_{step}": f"{run_id}__{step}" for step, _ in BUSINESS_DAY_STEPS},
    }


def summarise_business_day(plan: Mapping[str, Any], context: Mapping[str, Any]) -> dict:
    """One summary of the whole day: each step's worst finding (from `check_results` of the run it triggered; the
    fan-out's from the SLA), posted like every other summary and written as this run's note."""
    import datetime as dt

    from include.core.alerting import RunRef, Severity, worst
    from include.core.checks import CheckResult, summarise
    from include.core.db import query
    from include.delivery import sla

    day = dt.date.fromisoformat(plan["business_date"])
    engine = get_engine()
    results = []
    with engine.connect() as conn:
        for step, label in BUSINESS_DAY_STEPS:
            if step == "fanout":
                m = sla.measure(engine, day)
                r = CheckResult(label, Severity.INFO if m.met else Severity.P0,
                                f"{m.ratio:.2%} accepted within the window")
                if not m.met:
                    r.items.append(f"SLA missed: {m.miss()}")
                results.append(r)
                continue
            run_id = plan[f"run_id_{step}"]
            found = conn.execute(query("checks/for_run"), {"run_id": run_id}).fetchall()
            if not found:
                results.append(CheckResult(label, Severity.P1, "recorded no checks (see its run)",
                                           [f"{step} run {run_id} wrote no check results"]))
                continue
            r = CheckResult(label, worst([Severity(f.severity) for f in found]),
                            f"{sum(f.ok for f in found)}/{len(found)} checks passed")
            r.items.extend(f"{f.check_name}: {f.summary}" for f in found if not f.ok)
            results.append(r)
    alert = summarise("Business day run", day, results, RunRef.from_context(context),
                      facts={"fan-out through": plan["fanout_dag"]})
    return {"severity": alert.severity.value, "steps": {r.name: r.severity.value for r in results}}
