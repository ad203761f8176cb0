"""Airflow task entry points of the nightly content window (20:30 IST). Each resolves the business date the
window prepares (tomorrow in IST, or the operator's date), calls the plain functions of include/content/, and
records check results in `check_results` against its run."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from include.core import config
from include.core.dates import TOMORROW, business_date

DAG_ID = "nightly_content_window"


def check_approval_backlog(context: Mapping[str, Any]) -> dict:
    from include.content.nightly_window import approval_backlog_check
    from include.core.checks import finish
    from include.core.db import get_engine

    engine, day = get_engine(), business_date(context, TOMORROW)
    threshold = int((context.get("params") or {}).get("backlog_threshold") or config.PENDING_BACKLOG_THRESHOLD)
    return finish(engine, approval_backlog_check(engine, day, threshold, context), day, context, DAG_ID)


def validate_templates(context: Mapping[str, Any]) -> dict:
    """Template findings (P1 backup switch, P0 none) reach Slack in the window summary, which pages on them."""
    from include.core.checks import finish
    from include.core.db import get_engine
    from include.delivery.pre_delivery_check import template_check
    from include.whatsapp.client import WhatsAppHook

    engine, day = get_engine(), business_date(context, TOMORROW)
    with WhatsAppHook().get_conn() as client:
        result, chosen = template_check(engine, client)
    return finish(engine, result, day, context, DAG_ID) | {"chosen_templates": chosen}


def plan_render_batches(context: Mapping[str, Any]) -> list[dict]:
    from include.content.nightly_window import render_batches
    from include.core.db import get_engine

    return render_batches(get_engine(), business_date(context, TOMORROW))


def render_batch_label(batch: Mapping[str, Any], mode: str) -> str:
    """What the UI shows for a mapped render task: which kind of pack and which batch."""
    return f"{mode} · {batch['label']}"


def render_batch(batch: Mapping[str, Any], mode: str) -> dict:
    from include.content.nightly_window import render_batch as render
    from include.core.db import get_engine

    return render(get_engine(), dt.date.fromisoformat(batch["business_date"]), int(batch["batch"]),
                  int(batch["batch_count"]), mode)


def review_compliance_with_ai(context: Mapping[str, Any]) -> dict:
    """The AI compliance review of the date's approved packs, after render QC and before the fallbacks: a violation
    fails the pack's renders, so the next step gives those advisors fallback content. Degradations are P1s."""
    from include.content.ai_review import review_packs
    from include.core.checks import finish
    from include.core.db import get_engine

    engine, day = get_engine(), business_date(context, TOMORROW)
    return finish(engine, review_packs(engine, day, context=context), day, context, DAG_ID)


def assign_fallback_content(context: Mapping[str, Any]) -> dict:
    from include.content.nightly_window import assign_fallbacks
    from include.core.db import get_engine

    return assign_fallbacks(get_engine(), business_date(context, TOMORROW))


def finalize_fallback_renders(context: Mapping[str, Any]) -> dict:
    from include.content.nightly_window import finalize_fallbacks
    from include.core.db import get_engine

    return finalize_fallbacks(get_engine(), business_date(context, TOMORROW))


def send_canary(context: Mapping[str, Any]) -> dict:
    from include.content.canary import run_canary
    from include.core.checks import finish
    from include.core.db import get_engine
    from include.whatsapp.client import WhatsAppHook

    engine, day = get_engine(), business_date(context, TOMORROW)
    ti = context.get("ti")
    result = run_canary(engine, WhatsAppHook().get_settings(), day, context=context,
                        run_id=getattr(ti, "run_id", None))
    return finish(engine, result, day, context, DAG_ID)


def publish_window_summary(reported: Mapping[str, dict | None], context: Mapping[str, Any]) -> dict:
    from include.content.nightly_window import publish_window_summary as publish
    from include.core.db import get_engine

    return publish(get_engine(), business_date(context, TOMORROW), reported, context)


def rendered_packs_extra(summary: Mapping[str, Any], context: Mapping[str, Any]) -> dict:
    """What the `rendered_packs` asset event says: whose packs, how many rendered, how many failed QC."""
    return {"business_date": str(business_date(context, TOMORROW)), "renders": summary["renders"],
            "qc_failed": summary["failed"]}


# -- nightly_bulk_approval_offer: the approvers' 21:30 choice (human-in-the-loop) ----------------------------------
def bulk_approval_offer(context: Mapping[str, Any]) -> dict | None:
    """list_low_risk_pending_packs: tomorrow's pending low-risk packs, or None (nothing to ask)."""
    from include.content.bulk_approval_offer import build_offer
    from include.core.db import get_engine

    return build_offer(get_engine(), business_date(context, TOMORROW))


def apply_bulk_approval_answer(context: Mapping[str, Any]) -> dict:
    """approve_what_the_approvers_chose: the answer applied to the offered packs, audited."""
    from include.content.bulk_approval_offer import apply_answer
    from include.core.db import get_engine

    ti = context["ti"]
    return apply_answer(get_engine(), ti.xcom_pull(task_ids="list_low_risk_pending_packs"),
                        ti.xcom_pull(task_ids="offer_bulk_approval_to_approvers"), context)
