"""Post-delivery reporting for a business date, at the 06:05, 06:15 and 06:30 IST checkpoints.

Every checkpoint reconciles stored webhooks into deliveries, lists stuck messages, computes KPIs
and applies the runbook's alert thresholds (delivery rate < 95% warning, < 90% critical; opt-out
spike P1). Then:
* 06:05 — the SLA: >= 99% accepted, all 4 segment groups processed, zero critical failures, and the
  quality rating held on every number that sent;
* 06:15 — analytics: KPI summary, advisors failing 3 days in a row, webhook processing lag;
* 06:30 — Great Expectations checks, the HTML/CSV daily report and the hand-off summary.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Engine

from include.core import config
from include.core.alerting import Alert, RunRef, Severity, post_once
from include.core.checks import CheckResult
from include.core.db import query
from include.whatsapp.platform_limits import THROUGHPUT_MPS

log = logging.getLogger(__name__)

CHECKPOINTS = ("06:05", "06:15", "06:30")
DAG_ID = "post_delivery_report"


def checkpoint_for(local_time: dt.time) -> str:
    """Which checkpoint a run at this IST time is: the latest one not after it (06:30 from then on)."""
    chosen = CHECKPOINTS[0]
    for cp in CHECKPOINTS:
        h, m = (int(x) for x in cp.split(":"))
        if (local_time.hour, local_time.minute) >= (h, m):
            chosen = cp
    return chosen


# -- every checkpoint -----------------------------------------------------------------------------------
def stuck_messages(engine: Engine, business_date: dt.date,
                   stuck_after_min: int = config.STUCK_AFTER_MINUTES) -> CheckResult:
    result = CheckResult("stuck_messages")
    with engine.connect() as conn:
        rows = conn.execute(query("report/stuck"), {"business_date": business_date,
                                                    "stuck_after_min": stuck_after_min}).fetchall()
    result.facts.update(stuck=len(rows), stuck_after_minutes=stuck_after_min,
                        by_number={r.phone_number_id: sum(1 for x in rows if x.phone_number_id == r.phone_number_id)
                                   for r in rows})
    if rows:
        result.escalate(Severity.P2, f"{len(rows)} message(s) accepted but without delivered/read/failed after "
                                     f"{stuck_after_min} min")
        result.items.extend(f"advisor {r.advisor_id} via {r.phone_number_id}: {r.status} since "
                            f"{r.accepted_at:%H:%M:%S} UTC ({r.minutes_waiting:.0f} min), {r.wamid}" for r in rows[:20])
    with engine.connect() as conn:
        unknown = conn.execute(query("report/unknown_outcomes"), {
            "business_date": business_date, "stale_s": config.SENDER_STALE_SENDING_S}).fetchall()
    result.facts.update(unknown_outcome=len(unknown))
    if unknown:
        # Not resent: a send that may have been accepted is an operator's call (the audit trail shows it).
        result.escalate(Severity.P1, f"{len(unknown)} send(s) with an unknown outcome: no status webhook, not "
                                     "resent automatically")
        result.items.extend(f"advisor {r.advisor_id} via {r.phone_number_id}: {r.status} since "
                            f"{r.sending_at:%H:%M:%S} UTC ({r.minutes_unknown:.0f} min, attempt {r.attempts})"
                            for r in unknown[:20])
    result.summary = f"{len(rows)} stuck after {stuck_after_min} min, {len(unknown)} unknown outcome"
    return result


def _delivery_rate_incident(engine: Engine, business_date: dt.date, rate: float, checkpoint: str,
                            severity: Severity) -> None:
    """Below 95% the runbook's impact matrix applies (engineering manager at once, head of product within 1 h, CTO
    within 4 h; below 90% the CTO, CEO and board). A P0 alert opens the day's delivery-rate incident through
    alerting.post (its facts carry the date and the rate); a P2 opens no incident there, so it is opened here.
    At or above 95% at a later checkpoint, the delivery recovered: the incident resolves itself."""
    from include.incidents import records

    now = dt.datetime.now(dt.UTC)
    if rate < config.DELIVERY_RATE_WARNING and severity not in (Severity.P0, Severity.P1):
        records.open_or_join(engine, f"delivery_rate:{business_date}", severity.value, "delivery_rate",
                             f"delivery rate {rate:.2%} at the {checkpoint} checkpoint", business_date, now,
                             {"delivery_rate": rate}, actor="post_delivery_report.apply_alert_thresholds")
    elif rate >= config.DELIVERY_RATE_WARNING:
        records.resolve_when_clear(engine, "delivery_rate", business_date, True, now,
                                   f"automatic: delivery rate {rate:.2%} at the {checkpoint} checkpoint")


def threshold_alerts(engine: Engine, business_date: dt.date, kpis: dict, checkpoint: str,
                     context: dict | None = None) -> CheckResult:
    """Delivery rate (from 06:15, when statuses have had time to arrive) and opt-out spikes."""
    result = CheckResult("alert_thresholds")
    ref = RunRef.from_context(context)
    o = kpis["overall"]
    rate = o["delivery_rate"]
    result.facts["delivery_rate"] = rate
    if checkpoint != "06:05" and rate is not None:
        if rate < config.DELIVERY_RATE_CRITICAL:
            result.escalate(Severity.P0, f"delivery rate {rate:.2%} below the critical "
                                         f"{config.DELIVERY_RATE_CRITICAL:.0%}")
        elif rate < config.DELIVERY_RATE_WARNING:
            result.escalate(Severity.P2, f"delivery rate {rate:.2%} below the warning "
                                         f"{config.DELIVERY_RATE_WARNING:.0%}")
        if not result.ok:
            post_once(engine, business_date, f"delivery-rate:{checkpoint}", Alert(
                result.severity, f"Delivery rate {rate:.2%} for {business_date} at {checkpoint}",
                {"business date": business_date.isoformat(), "delivery_rate": rate, "delivered": o["delivered"],
                 "planned": o["planned"], "skipped": o["skipped"], "failed by code": o["failed_by_error_code"]},
                ref))
        _delivery_rate_incident(engine, business_date, rate, checkpoint, result.severity)
    with engine.connect() as conn:
        spike = conn.execute(query("report/opt_out_spike"), {"business_date": business_date}).one()
    share = spike.recent_opt_outs / spike.recent_sends if spike.recent_sends else 0.0
    result.facts.update(opt_outs_last_5min=spike.last_5min, opt_out_share_last_100=round(share, 4))
    if spike.last_5min > config.OPT_OUT_SPIKE_COUNT_5MIN or share > config.OPT_OUT_SPIKE_RATIO_LAST_100:
        msg = (f"opt-out spike: {spike.last_5min} in 5 min (limit {config.OPT_OUT_SPIKE_COUNT_5MIN}), "
               f"{share:.1%} of the last {spike.recent_sends} sends (limit {config.OPT_OUT_SPIKE_RATIO_LAST_100:.0%})")
        result.escalate(Severity.P1, msg)
        post_once(engine, business_date, f"opt-out-spike:{checkpoint}", Alert(
            Severity.P1, f"Opt-out spike on {business_date}", {"detail": msg}, ref))
    result.summary = "within thresholds" if result.ok else "; ".join(result.items)
    return result


# -- 06:05 -------------------------------------------------------------------------------------------------
def sla_checkpoint(engine: Engine, business_date: dt.date, kpis: dict, client=None) -> CheckResult:
    result = CheckResult("sla_0605")
    from include.delivery import sla

    measured = sla.measure(engine, business_date)
    with engine.connect() as conn:
        critical = conn.execute(query("report/critical_failures"), {
            "business_date": business_date, "codes": list(config.CRITICAL_ERROR_CODES)}).fetchall()
        used = conn.execute(query("report/numbers_used"), {"business_date": business_date}).fetchall()
    ratio = measured.ratio
    result.facts.update(planned=measured.figures["planned"],
                        accepted_within_window=measured.figures["accepted_by_deadline"], accepted_ratio=round(ratio, 4))
    if not measured.met:
        result.escalate(Severity.P0, f"SLA missed: {measured.miss()}")
    else:
        from include.incidents.records import resolve_when_clear

        resolve_when_clear(engine, "sla", business_date, True, dt.datetime.now(dt.UTC),
                           f"automatic: SLA met at 06:05 ({ratio:.2%} accepted within the window)")
    segs = kpis["by_segment"]
    unprocessed = [seg for seg in config.SEGMENTS if seg not in segs or segs[seg]["unresolved"] > 0]
    result.facts["segment_groups_processed"] = f"{len(config.SEGMENTS) - len(unprocessed)}/{len(config.SEGMENTS)}"
    if unprocessed:
        result.escalate(Severity.P1, "segment group(s) not fully processed: " + ", ".join(
            f"{seg} ({segs[seg]['unresolved']} unresolved)" if seg in segs else f"{seg} (nothing planned)"
            for seg in unprocessed))
    result.facts["critical_failures"] = {r.error_code: r.failed_rows + r.attempts for r in critical}
    if critical:
        result.escalate(Severity.P0, "critical failures: " + ", ".join(
            f"{r.error_code} ({r.failed_rows} failed rows, {r.attempts} attempts)" for r in critical))
    held = []
    for n in used:
        rating = n.quality_rating
        if client is not None:
            try:
                rating = client.get_phone_number(n.phone_number_id).get("quality_rating") or rating
            except Exception as exc:  # noqa: BLE001 - an unreachable API is itself a finding, not a crash
                result.escalate(Severity.P1, f"could not read quality of {n.phone_number_id}: {exc}")
        held.append(f"{n.display_phone}: {rating}{'' if n.active else ' (retired: ' + str(n.retired_reason) + ')'}")
        if rating != "GREEN" or not n.active:
            result.escalate(Severity.P1 if rating != "RED" else Severity.P0,
                            f"quality rating not held on {n.display_phone}: {rating}"
                            + ("" if n.active else f", rotated out ({n.retired_reason})"))
    result.facts["quality"] = held
    result.summary = (f"SLA met ({ratio:.2%}), segments {result.facts['segment_groups_processed']}, "
                      f"no critical failures, quality held" if result.ok else f"{len(result.items)} finding(s)")
    return result


# -- 06:15 -------------------------------------------------------------------------------------------------
def analytics_checkpoint(engine: Engine, business_date: dt.date, kpis: dict) -> CheckResult:
    from include.reporting.webhook_reconciliation import processing_lag

    result = CheckResult("analytics_0615")
    with engine.connect() as conn:
        streak = conn.execute(query("report/failing_streak"), {"business_date": business_date,
                                                               "days": config.FAILING_STREAK_DAYS}).fetchall()
    lag = processing_lag(engine)
    o = kpis["overall"]
    result.facts.update(delivery_rate=o["delivery_rate"], latency_p50_s=o["latency_p50_s"],
                        latency_p95_s=o["latency_p95_s"], delivered_within_5min=o["delivered_within_5min_ratio"],
                        api_p95_latency_ms=o.get("api_p95_latency_ms"), webhook_lag=lag,
                        failing_streak_advisors=len(streak))
    if streak:
        result.escalate(Severity.P2, f"{len(streak)} advisor(s) failed {config.FAILING_STREAK_DAYS} days in a row")
        result.items.extend(f"{r.external_ref} ({r.segment}): error codes {sorted(c for c in r.error_codes if c)}"
                            for r in streak[:20])
    if not o["slo_delivered_within_5min_met"]:
        result.escalate(Severity.P2, f"delivered-within-5-min SLO missed: {o['delivered_within_5min_ratio']} "
                                     f"(target {config.DELIVERED_WITHIN_SLO_RATIO:.0%})")
    if lag["oldest_unprocessed_s"] > 600:
        result.escalate(Severity.P2, f"webhook processing lag: oldest unprocessed event "
                                     f"{lag['oldest_unprocessed_s']} s")
    result.summary = (f"delivery rate {o['delivery_rate']}, p95 latency {o['latency_p95_s']} s, "
                      f"{len(streak)} advisor(s) on a failing streak, {lag['unprocessed']} events waiting")
    return result


# -- 06:30 -------------------------------------------------------------------------------------------------
def final_report(engine: Engine, business_date: dt.date, context: dict | None = None) -> dict[str, Any]:
    """GX validation, the HTML and CSV report, stored together; alerts on failed expectations."""
    import pandas as pd

    from include.reporting import data_quality, kpis as kpi_mod, daily_report as report

    outcomes = kpi_mod.load_outcomes(engine, business_date)
    attempts = kpi_mod.load_attempts(engine, business_date)
    kpis = kpi_mod.compute(outcomes, attempts)
    validation = data_quality.validate(data_quality.load_frames(engine, business_date,
                                                                kpis["overall"]["delivery_rate"]))
    with engine.connect() as conn:
        trend = pd.DataFrame(conn.execute(query("report/trend"), {"business_date": business_date,
                                                                  "days": config.REPORT_TREND_DAYS}).fetchall(),
                             columns=["business_date", "planned", "accepted", "delivered", "read", "failed",
                                      "skipped"])
        used = conn.execute(query("report/numbers_used"), {"business_date": business_date}).fetchall()
    limit = float(sum(n.throughput_mps for n in used)) or float(THROUGHPUT_MPS["STANDARD"])
    html = report.render_html(business_date, kpis, outcomes, kpi_mod.send_rate_per_minute(attempts), limit, trend,
                              validation, dt.datetime.now(config.IST))
    uris = report.write(business_date, {
        "daily-report.html": html, "outcomes.csv": report.outcomes_csv(outcomes),
        "data-quality.json": report.json_dump(validation), "kpis.json": report.json_dump(kpis)})
    data_quality.alert_on_failures(validation, business_date, context, uris["data-quality.json"])
    return {"kpis": kpis, "validation": {k: v for k, v in validation.items() if k != "results"},
            "failed_expectations": [r["expectation"] for r in validation["results"] if not r["success"]],
            "report": uris}


def report_link(business_date: dt.date, filename: str) -> str:
    """The http URL of one of a date's report files, served by the delivery cockpit (plugins/delivery_cockpit.py)."""
    return f"{config.UI_BASE_URL.rstrip('/')}/cockpit/reports/{business_date.isoformat()}/{filename}"


def publish(engine: Engine, business_date: dt.date, checkpoint: str, results: list[CheckResult], kpis: dict,
            extra: dict | None = None, context: Mapping[str, Any] | None = None) -> dict:
    """The checkpoint's Slack summary: the key numbers, one line per check, and at 06:30 where the report is."""
    from include.core.checks import summarise

    o = kpis["overall"]
    facts: dict[str, Any] = {
        "checkpoint": f"{checkpoint} IST",
        "planned / accepted": f"{o['planned']:,} / {o['accepted']:,}",
        "delivered / read": f"{o['delivered']:,} / {o['read']:,}",
        "failed / skipped": f"{o['failed']:,} / {o['skipped']:,}",
        "delivery rate": "n/a" if o["delivery_rate"] is None else f"{o['delivery_rate']:.2%}",
        "latency p50 / p95": f"{o['latency_p50_s']} / {o['latency_p95_s']} s",
    }
    if extra and extra.get("report"):
        # Links an on-call engineer can open: the cockpit serves the stored report over http, behind the Airflow
        # login (a file:// or object-store URI opens nothing from Slack).
        facts["report"] = report_link(business_date, "daily-report.html")
        facts["outcomes CSV"] = report_link(business_date, "outcomes.csv")
        facts["stored at"] = extra["report"].get("daily-report.html")
        facts["data quality"] = ("all expectations passed" if not extra["failed_expectations"]
                                 else f"failed: {', '.join(extra['failed_expectations'])}")
    title = {"06:05": "Delivery SLA checkpoint", "06:15": "Delivery analytics",
             "06:30": "Daily delivery report and hand-off"}[checkpoint]
    alert = summarise(title, business_date, results, RunRef.from_context(context), facts=facts)
    return {"checkpoint": checkpoint, "severity": alert.severity.value, "findings": list(alert.details)}
