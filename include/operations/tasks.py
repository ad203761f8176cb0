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
    from include.delivery.kill_switch import announce_sending_change, set_sending_paused

    with fail_fast_on_bad_input():
        state = set_sending_paused(get_engine(), paused, _params(context).get("reason", ""), acting_user(context))
    announce_sending_change(state, context)
    return {"paused": state.paused, "reason": state.reason, "changed_by": state.changed_by}


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
