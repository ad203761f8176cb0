"""The 05:50 IST pre-delivery check, one function per runbook step. Each returns a CheckResult;
`publish_summary` posts them all to Slack and fails the run when the worst one is a P0."""
from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy.engine import Engine

from include.core import config

from include.content import readiness as content, templates

from include.delivery import numbers, planning
from include.core.alerting import Severity
from include.core.checks import CheckResult
from include.core.db import query
from include.core.storage import render_root
from include.whatsapp.client import WhatsAppClient, WhatsAppError

log = logging.getLogger(__name__)


def system_health(engine: Engine, client: WhatsAppClient) -> CheckResult:
    """App DB round trip and pool state, render storage writable, WhatsApp reachable with a valid token."""
    result = CheckResult("system_health")
    import time

    t = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        result.facts["db_round_trip_ms"] = round((time.perf_counter() - t) * 1000, 1)
        result.facts["db_pool"] = engine.pool.status()
    except Exception as exc:  # noqa: BLE001 - any DB failure is the finding
        result.escalate(Severity.P0, f"app database unreachable: {exc}")
    else:
        kill_switch(engine, result)
    try:
        probe = render_root() / f".healthcheck-{uuid.uuid4().hex}"
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        assert probe.read_bytes() == b"ok"
        probe.unlink()
        result.facts["render_storage"] = str(render_root())
    except Exception as exc:  # noqa: BLE001
        result.escalate(Severity.P0, f"render storage {render_root()} not writable: {exc}")
    try:
        info = client.health()
        result.facts["whatsapp"] = f"WABA {info.get('id')} reachable"
    except WhatsAppError as exc:
        result.escalate(Severity.P0, f"WhatsApp API check failed ({exc.error_class.value}, code {exc.code}): {exc}")
    else:
        token_expiry(client, result)
    result.summary = "healthy" if result.ok else f"{len(result.items)} problem(s)"
    return result


def token_expiry(client: WhatsAppClient, result: CheckResult, now: dt.datetime | None = None) -> None:
    """Runbooks 002/003: the access token is rotated before it expires. Warn (P1) within FA_TOKEN_EXPIRY_WARN_DAYS,
    page (P0) when Graph says it is no longer valid; a token that never expires (system user) is a fact."""
    try:
        token = client.debug_token()
    except WhatsAppError as exc:
        result.escalate(Severity.P1, f"could not read the access token's expiry (debug_token): {exc}")
        return
    now = now or dt.datetime.now(dt.UTC)
    days = token.days_left(now)
    if not token.is_valid:
        result.escalate(Severity.P0, "the WhatsApp access token is not valid (debug_token): rotate it now")
    elif days is None:
        result.facts["token_expires"] = "never (system-user token)"
    else:
        when = token.expires_at.astimezone(config.IST).strftime("%Y-%m-%d %H:%M IST")
        result.facts["token_expires"] = when
        if days <= config.TOKEN_EXPIRY_WARN_DAYS:
            result.escalate(Severity.P1, f"the WhatsApp access token expires {when} ({max(0.0, days):.1f} days): "
                                         "rotate it (README: rotating the access token)")


def kill_switch(engine: Engine, result: CheckResult) -> None:
    """A kill switch left paused means the 06:00 fan-out will send nothing: a P1 finding with who paused it,
    when and why, so it is resumed (or kept paused) on purpose before 06:00."""
    from include.delivery.kill_switch import sending_state

    state = sending_state(engine)
    result.facts["kill_switch"] = state.describe()
    if state.paused:
        result.escalate(Severity.P1, f"kill switch is PAUSED ({state.describe()}): the 06:00 fan-out will send "
                                     "nothing until ops_resume_sending is run")


def whatsapp_numbers(engine: Engine, client: WhatsAppClient, business_date: dt.date, actor: str) -> CheckResult:
    """Quality rating, status and throughput per number; RED rotates to the hot spare; tier vs recipients."""
    result = CheckResult("whatsapp_numbers")
    statuses = numbers.refresh_numbers(engine, client)
    from include.delivery.cooldown_store import open_ramps

    in_cooldown = {r.phone_number_id for r in open_ramps(engine)}
    for n in statuses:
        label = f"{n.display_phone} ({n.phone_number_id}, {n.role}{'' if n.shard is None else f' shard {n.shard}'})"
        if n.error:
            result.escalate(Severity.P0, f"{label}: status unavailable: {n.error}")
            continue
        result.facts[label] = f"{n.quality_rating}, {n.status}, {n.throughput_mps} msg/s, {n.messaging_tier}"
        if n.status != "CONNECTED":
            result.escalate(Severity.P0, f"{label} is {n.status}")
        if n.quality_rating == "YELLOW":
            result.escalate(Severity.P1, f"{label} quality YELLOW: watch complaints and pause marketing variants")
        if n.quality_rating == "RED" and n.phone_number_id in in_cooldown:
            # Its recovery plan resets to 0% (check_number_ramps): the cover carries its share, no rotation.
            result.escalate(Severity.P0, f"{label} is RED again during its quality cooldown: share reset to 0%, "
                                         "its rows go to the cover (check_number_ramps)")
        elif n.quality_rating == "RED" or (n.status != "CONNECTED" and n.role == "primary"):
            if n.role == "primary":
                try:
                    moved = numbers.rotate_to_hot_spare(engine, n.phone_number_id,
                                                        f"pre-delivery check: quality {n.quality_rating}, "
                                                        f"status {n.status}", actor, business_date)
                    result.escalate(Severity.P0, f"{label} is {n.quality_rating}/{n.status}: shard {moved['shard']}"
                                                 f" rotated to hot spare {moved['to']} ({moved['rows_moved']} rows)")
                except numbers.RotationError as exc:
                    result.escalate(Severity.P0, f"{label} is {n.quality_rating}/{n.status} and cannot rotate: {exc}")
            else:
                result.escalate(Severity.P1, f"hot spare {label} is {n.quality_rating}/{n.status}")
    primaries = [n for n in numbers.active_numbers(engine) if n.role == "primary"]
    if not primaries:
        result.escalate(Severity.P0, "no active primary sending number")
    # The portfolio messaging tier is shared by every number: check it once against today's recipients.
    with engine.connect() as conn:
        recipients = conn.execute(query("advisors/eligible_count")).scalar_one()
    tiers = {n.messaging_tier for n in statuses if not n.error}
    unknown = sorted(t for t in tiers if t not in numbers.TIER_LIMITS)
    if unknown:
        # WhatsApp gave no tier the project knows (e.g. TIER_NOT_SET or no whatsapp_business_manager_messaging_limit):
        # say so rather than read it as "unlimited".
        result.escalate(Severity.P1, f"messaging tier unknown ({', '.join(unknown)}): the tier-versus-recipients "
                                     "check cannot confirm today's recipients fit the portfolio limit")
    limits = [numbers.tier_limit(t) for t in tiers if t in numbers.TIER_LIMITS]
    limit = None if not limits or any(v is None for v in limits) else min(limits)
    result.facts["recipients_today"] = recipients
    result.facts["messaging_tier_limit"] = ("unknown" if not limits else "unlimited") if limit is None else limit
    if limit is not None and recipients > limit:
        result.escalate(Severity.P0, f"messaging tier covers {limit} unique recipients but {recipients} are due: "
                                     f"{recipients - limit} advisors at risk of not receiving today's pack")
    ceiling = sum(n.throughput_mps for n in primaries)
    result.facts["throughput_ceiling_mps"] = ceiling
    if ceiling and recipients / ceiling > config.SEND_WINDOW_SECONDS:
        result.escalate(Severity.P1, f"{recipients} recipients need {recipients / ceiling:.0f} s at {ceiling} msg/s,"
                                     f" more than the {config.SEND_WINDOW_SECONDS} s window")
    result.summary = (f"{len(statuses)} numbers checked" if result.ok
                      else f"{len(result.items)} finding(s) across {len(statuses)} numbers")
    return result


def template_check(engine: Engine, client: WhatsAppClient) -> tuple[CheckResult, dict[str, str]]:
    """Sync statuses and choose today's approved variant per language."""
    result = CheckResult("templates")
    synced = templates.sync_templates(engine, client)
    decision = templates.decide_variants(engine)
    result.facts["synced"] = synced
    for lang, name in sorted(decision.chosen.items()):
        result.facts[f"template[{lang}]"] = name
    for lang, (primary, status, backup) in decision.switched.items():
        result.escalate(Severity.P1, f"{primary} ({lang}) is {status}: switched to backup variant {backup}")
    for lang, seen in decision.missing.items():
        result.escalate(Severity.P0, f"no APPROVED daily-pack template for language {lang}: {', '.join(seen)}")
    if "en" not in decision.chosen:
        result.escalate(Severity.P0, "no approved template for the default language en: nothing can be sent")
    result.summary = "all needed templates approved" if result.ok else f"{len(result.items)} template problem(s)"
    return result, decision.chosen


def content_ready(engine: Engine, business_date: dt.date) -> CheckResult:
    """Approval queue empty; every due advisor has a QC-passed render or a fallback (assigned here if missing)."""
    result = CheckResult("content_ready")
    pending = content.approval_backlog(engine, business_date)
    if pending:
        result.escalate(Severity.P1, f"{len(pending)} pack(s) for {business_date} still pending approval "
                                     f"(oldest: {pending[0].pack_key} since {pending[0].submitted_at:%Y-%m-%d %H:%M})")
    a = content.assign_content(engine, business_date)
    result.facts.update(eligible=a.eligible, approved=a.approved, fallback=a.fallback,
                        newly_assigned_fallback=a.newly_fallback, demoted_failed_render=a.demoted)
    if a.newly_fallback:
        result.escalate(Severity.P2, f"{a.newly_fallback} advisor(s) had no approved, QC-passed pack: "
                                     f"evergreen fallback assigned")
    if a.unassigned:
        result.escalate(Severity.P0, f"{a.unassigned} eligible advisor(s) have no content at all "
                                     f"(evergreen library empty?)")
    from include.content.canary import latest_verdict

    verdict = latest_verdict(engine, business_date)
    result.facts["canary"] = f"{verdict.status}: {verdict.summary}" if verdict else "no canary ran for this date"
    if verdict is not None and verdict.status == "failed":
        result.escalate(Severity.P1, f"last night's canary failed: {verdict.summary}")
    result.summary = f"{a.assigned}/{a.eligible} advisors have content ({a.fallback} fallback)"
    return result


def prepare_queue(engine: Engine, business_date: dt.date, chosen_templates: dict[str, str],
                  jitter_window_s: int = config.JITTER_WINDOW_SECONDS) -> CheckResult:
    result = CheckResult("queue_preparation")
    if "en" not in chosen_templates:
        result.escalate(Severity.P0, "delivery plan not built: no approved template for the default language")
        return result
    plan = planning.build_plan(engine, business_date, chosen_templates, jitter_window_s=jitter_window_s)
    result.facts.update(planned=plan.total, written=plan.written, removed=plan.removed,
                        shards=plan.by_shard, segments=plan.by_segment, max_jitter_s=round(plan.max_jitter_ms / 1000))
    if plan.total == 0:
        result.escalate(Severity.P0, "the delivery plan is empty")
    if len(plan.by_segment) < len(config.SEGMENTS) and plan.total:
        missing = sorted(set(config.SEGMENTS) - set(plan.by_segment))
        result.escalate(Severity.P1, f"segment group(s) without recipients: {', '.join(missing)}")
    for r in plan.ramps:
        result.facts[f"ramp {r['number']}"] = (f"{r['share_pct']}% of {r['normal_share']}: kept {r['kept']}, "
                                               f"moved {r['moved'] or 'none'}")
        if r["unplaced"]:
            result.escalate(Severity.P1, f"{r['number']} is ramping at {r['share_pct']}% but {r['unplaced']} "
                                         "row(s) of its share found no capacity on the hot spare or healthy "
                                         "numbers: they stay on it, above its ramp")
    result.summary = f"{plan.total} advisors planned on {len(plan.by_shard)} shards"
    return result


def number_ramps(engine: Engine, client: WhatsAppClient, business_date: dt.date, actor: str) -> CheckResult:
    """Quality-drop runbook: record new drops (cooldown, content review, backup template, non-critical sends
    held), judge each open ramp for the day, and show every ramp (share, cooldown, cover) in the summary."""
    from include.delivery import cooldown_store

    result = CheckResult("number_ramps")
    for d in cooldown_store.record_drops(engine, business_date, actor):
        result.escalate(Severity.P1, f"{d.display_phone} quality {d.quality}: cooldown at 0% until "
                                     f"{d.cooldown_until.astimezone(config.IST):%Y-%m-%d %H:%M} IST, then +"
                                     f"{config.COOLDOWN_STEP_PCT}% per GREEN day; canary and re-sends paused on it; "
                                     f"backup template preferred; content review ({d.review.get('packs', 0)} "
                                     f"pack-days, {d.review.get('with_findings', 0)} with findings): "
                                     f"{d.review.get('html')}")
    qualities = {}
    for r in cooldown_store.open_ramps(engine):
        if not r.active:  # retired numbers are not refreshed with the others: ask WhatsApp
            try:
                qualities[r.phone_number_id] = client.get_phone_number(r.phone_number_id).quality_rating
            except WhatsAppError as exc:
                result.escalate(Severity.P1, f"{r.display_phone}: quality unavailable for its ramp: {exc}")
    lines = []
    for r in cooldown_store.evaluate_day(engine, business_date, qualities, actor):
        state = ("ended: back to 100%" if r["ended"] else
                 f"{r['share_pct']}%" + (f", cooldown until {r['cooldown_until'].astimezone(config.IST):%m-%d %H:%M}"
                                         if r["share_pct"] == 0 else ""))
        cover = f", cover {r['cover']} (shard {r['cover_shard']})" if r.get("cover") else ""
        result.facts[f"ramp {r['number']}"] = f"{r['quality']}: {r['decision']}; {state}{cover}"
        lines.append(f"{r['number']} {state}")
        if not r["ended"] and not r.get("cover") and r["share_pct"] < 100:
            result.facts[f"ramp {r['number']} overflow"] = "no hot spare to cover: other healthy numbers take it"
    result.summary = ("no number in quality cooldown" if not lines else "ramps: " + "; ".join(lines))
    return result
