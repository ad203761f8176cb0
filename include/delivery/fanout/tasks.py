"""The fan-out's Airflow side: the task bodies `delivery_fanout` and `ops_backfill_delivery` call (prepare the
send queue, send one mapped unit, check the SLA, fail the run), the refusals that guard a scheduled run, and
`send_unit`, which runs one unit's sender on its own event loop."""
from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace

from sqlalchemy.engine import Engine

from include.core.alerting import Alert, RunRef, Severity, post
from include.core.db import query
from include.delivery.fanout.pacing import ShardSender
from include.delivery.fanout.units import AuthFailure, SenderOptions, Unit, prepare_fanout
from include.whatsapp.client import WhatsAppSettings


def send_unit(engine: Engine, settings: WhatsAppSettings, unit: dict, options: SenderOptions | None = None,
              context: dict | None = None) -> dict:
    """Entry point of one mapped `send_shard` task."""
    sender = ShardSender(engine, settings, Unit.from_dict(unit), options or SenderOptions(), context)
    return run_async(sender.run()).as_dict()


def run_async(coro):
    """Run a sender's event loop: uvloop when installed (measured ~15% less CPU per request here)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def refuse_dates_other_than_today(requested: dt.date, today: dt.date) -> None:
    """`delivery_fanout` delivers today (IST) only. A past date is a backfill, which needs a reason and an
    audit row (`ops_backfill_delivery`); a future date has nothing to deliver yet."""
    if requested > today:
        raise ValueError(f"business date {requested} is in the future (today in IST is {today}); "
                         "nothing can be delivered for it yet")
    if requested < today:
        raise ValueError(f"business date {requested} is not today ({today} in IST): delivering a past date is a "
                         "backfill; trigger ops_backfill_delivery with the date and a reason (it is audited)")


def refuse_generic_backfill(context: dict) -> None:
    """Airflow's generic Backfill of `delivery_fanout` would send past dates with no reason, no audit row and no
    archived-date check: only `ops_backfill_delivery` delivers a past date."""
    from include.core.dagkit import run_type

    if run_type(context.get("dag_run")) == "backfill":
        raise ValueError("Airflow's Backfill does not deliver packs: a past date is sent only through "
                         "ops_backfill_delivery, with a reason, an audit row and the archived-date check")


def run_prepare_send_queue(context: dict, business_date: dt.date, scheduled_dag: bool) -> list[dict]:
    """Body of `prepare_send_queue`: on the scheduled DAG, the late-start guard and today-only for a date an
    operator typed; then prepare_fanout."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.core.dagkit import fail_fast_on_bad_input
    from include.core.dates import ist_today
    from include.core.db import get_engine

    if scheduled_dag:
        from include.delivery import late_start

        try:
            approver = late_start.require_decision(context)
        except late_start.LateStart as exc:
            raise AirflowFailException(str(exc)) from exc  # retrying later would only be later
        if approver:
            late_start.audit_late_send(get_engine(), context, business_date, approver)
        with fail_fast_on_bad_input():
            refuse_generic_backfill(context)
            if (context.get("params") or {}).get("business_date"):
                refuse_dates_other_than_today(business_date, ist_today())
    return prepare_fanout(get_engine(), business_date)


def run_send_shard(unit: dict, context: dict) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    from include.core.db import get_engine
    from include.whatsapp.client import WhatsAppHook

    hook = WhatsAppHook()
    params = context.get("params") or {}
    options = SenderOptions(jitter_honoured=bool(params.get("honour_jitter", True)))
    try:
        return send_unit(get_engine(), hook.get_settings(), unit, options, context)
    except AuthFailure as exc:
        raise AirflowFailException(str(exc)) from exc  # a bad token does not heal by retrying


def validate_sla(engine: Engine, business_date: dt.date, context: dict | None = None,
                 results: list[dict] | None = None) -> dict:
    """>= 99% of the plan accepted within the 5-minute window, else a P0 with counts by reason."""
    from include.delivery import sla

    measured = sla.measure(engine, business_date)
    s = SimpleNamespace(**measured.figures)
    with engine.connect() as conn:
        reasons = conn.execute(query("fanout/outcome_reasons"), {"business_date": business_date}).fetchall()
    ti = (context or {}).get("ti")
    if ti is not None and ti.xcom_pull(task_ids="skip_late_run"):
        # A late scheduled run that on-call skipped (or nobody answered): its P0 and the skip are already out.
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(f"late start skipped by decision: nothing was sent for {business_date}")
    if s.queued_total == 0 and s.planned > 0 and context is not None:
        from include.core.dagkit import run_type

        if run_type(context.get("dag_run")) != "scheduled":
            # An operator's run whose prepare_send_queue refused the request (a wrong date): nothing was queued,
            # the refusal is on that task, and a P0 "SLA missed" would page on-call for a typo.
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(f"nothing was queued for {business_date}: see prepare_send_queue")
    ratio = measured.ratio
    facts = {"business date": business_date.isoformat(), "planned": s.planned, "accepted": s.accepted,
             "accepted within window": s.accepted_by_deadline, "skipped (DNC/opt-out)": s.skipped,
             "failed": s.failed, "still queued/unresolved": s.unresolved, "accepted ratio": f"{ratio:.2%}"}
    details = [f"{r.status} {r.reason}: {r.n}" for r in reasons]
    met = measured.met
    ref = RunRef.from_context(context)
    if not met:
        post(Alert(Severity.P0, f"Delivery SLA missed: {measured.miss()}", facts, ref, details))
    post(Alert(Severity.INFO, f"Delivery fan-out summary for {business_date}", facts, ref, details))
    from include.core.run_notes import write_run_note

    write_run_note(ref, Severity.INFO if met else Severity.P0,
                   f"Delivery fan-out for {business_date}: {ratio:.2%} accepted within the window "
                   f"({s.accepted}/{s.planned} accepted, {s.failed} failed, {s.skipped} skipped)"
                   + ("" if met else f"; SLA missed: {measured.miss()}"))
    return {"sla_met": met, "ratio": ratio, **{k: v for k, v in measured.figures.items() if k != "window_started"}}


def fail_run_if_a_task_failed(context: dict) -> None:
    """Turns the run red when its refusal or a sender failed, even though `validate_delivery_sla` (trigger rule
    all_done) still runs and succeeds after them. A failed SLA check needs no help: it is a leaf of the run."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException("a fan-out task failed (see the red task); rows not sent stay queued")
