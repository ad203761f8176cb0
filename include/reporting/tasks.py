"""Airflow task entry points of post-delivery reporting (06:05, 06:15 and 06:30 IST). Each resolves the date
(today in IST, or the operator's) and, where it matters, the checkpoint, then calls the plain functions of
include/reporting/."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from include.core import config
from include.core.dates import TODAY, business_date

DAG_ID = "post_delivery_report"
CHECKPOINT_TASKS = {"06:05": "check_sla_0605", "06:15": "summarise_analytics_0615",
                    "06:30": "build_daily_report_0630"}


def resolve_checkpoint(context: Mapping[str, Any]) -> str:
    """The checkpoint this run serves: the `checkpoint` Param, else 06:30 for a manual run with a date (the full
    report), else the run's time in IST."""
    from include.reporting.post_delivery_report import CHECKPOINTS, checkpoint_for

    params = context.get("params") or {}
    chosen = params.get("checkpoint") or "auto"
    if chosen != "auto":
        if chosen not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {CHECKPOINTS} or auto, got {chosen!r}")
        return chosen
    if params.get("business_date"):
        return "06:30"
    return checkpoint_for(context["dag_run"].run_after.astimezone(config.IST).time())


def choose_checkpoint(context: Mapping[str, Any]) -> str:
    """The branch to follow: the checkpoint's own task id."""
    return CHECKPOINT_TASKS[resolve_checkpoint(context)]


def reconcile_webhook_events(context: Mapping[str, Any]) -> dict:
    """Settle the date's sends of unknown outcome from webhooks (the senders have stopped), then apply the
    stored status webhooks to deliveries."""
    from include.core.db import get_engine
    from include.delivery.unknown_outcomes import settle_date
    from include.reporting.webhook_reconciliation import reconcile_webhooks

    engine = get_engine()
    settled = settle_date(engine, business_date(context, TODAY))
    out = reconcile_webhooks(engine).as_dict()
    out.update(unknown_settled_accepted=settled.accepted, unknown_requeued=settled.requeued,
               unknown_left=settled.unknown)
    return out


def detect_stuck_messages(context: Mapping[str, Any]) -> dict:
    from include.core.checks import finish
    from include.core.db import get_engine
    from include.reporting.post_delivery_report import stuck_messages

    engine, day = get_engine(), business_date(context, TODAY)
    return finish(engine, stuck_messages(engine, day), day, context, DAG_ID)


def compute_delivery_kpis(context: Mapping[str, Any]) -> dict:
    from include.core.db import get_engine
    from include.reporting import kpis

    engine, day = get_engine(), business_date(context, TODAY)
    return kpis.compute(kpis.load_outcomes(engine, day), kpis.load_attempts(engine, day))


def apply_alert_thresholds(kpis: dict, context: Mapping[str, Any]) -> dict:
    from include.core.checks import finish
    from include.core.db import get_engine
    from include.reporting.post_delivery_report import threshold_alerts

    engine, day = get_engine(), business_date(context, TODAY)
    return finish(engine, threshold_alerts(engine, day, kpis, resolve_checkpoint(context), context), day,
                  context, DAG_ID)


def check_sla_0605(kpis: dict, context: Mapping[str, Any]) -> dict:
    from include.core.checks import finish
    from include.core.db import get_engine
    from include.reporting.post_delivery_report import sla_checkpoint
    from include.whatsapp.client import WhatsAppHook

    engine, day = get_engine(), business_date(context, TODAY)
    with WhatsAppHook().get_conn() as client:
        result = sla_checkpoint(engine, day, kpis, client)
    return finish(engine, result, day, context, DAG_ID)


def summarise_analytics_0615(kpis: dict, context: Mapping[str, Any]) -> dict:
    from include.core.checks import finish
    from include.core.db import get_engine
    from include.reporting.post_delivery_report import analytics_checkpoint

    engine, day = get_engine(), business_date(context, TODAY)
    return finish(engine, analytics_checkpoint(engine, day, kpis), day, context, DAG_ID)


def build_daily_report_0630(context: Mapping[str, Any]) -> dict:
    from include.core.db import get_engine
    from include.reporting.post_delivery_report import final_report

    return final_report(get_engine(), business_date(context, TODAY), context)


def publish_checkpoint_summary(kpis: dict, reported: Mapping[str, dict | None], report: dict | None,
                               context: Mapping[str, Any]) -> dict:
    """The checkpoint's summary from what the DAG wiring hands over: the checks that always run (a missing one is
    a P1 finding), the checkpoint's own check when it ran, and at 06:30 the report."""
    from include.core.alerting import Severity
    from include.core.checks import collect
    from include.core.db import get_engine
    from include.reporting.post_delivery_report import publish

    results = collect(reported, missing=Severity.P1, optional=set(CHECKPOINT_TASKS.values()))
    return publish(get_engine(), business_date(context, TODAY), resolve_checkpoint(context), results, kpis, report,
                   context)
