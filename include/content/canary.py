"""The nightly canary: tomorrow's real renders go to the internal canary list through the fan-out's
own sender (`ShardSender` over a `CanaryQueue`: same claim/send/retry/reconcile code, same token buckets and
idempotency; in-window monitoring off, it pages on the advisors' fan-out only), then we wait, bounded, for
delivered status webhooks and record a verdict in `canary_runs` that the 05:50 pre-delivery check reads.

Every primary number sends at least one canary message when the list is long enough, so a broken
number shows up the night before. Canary rows live in `canary_sends`, never in `deliveries`, so
they do not touch the advisors' SLA or idempotency keys.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time

from sqlalchemy.engine import Engine

from include.core import config

from include.content import templates
from include.core.alerting import Alert, RunRef, Severity, post
from include.core.checks import CheckResult
from include.core.db import query
from include.delivery.fanout import CanaryQueue, SenderOptions, ShardSender, Unit
from include.core.phones import mask_phone
from include.whatsapp.client import WhatsAppSettings

log = logging.getLogger(__name__)


def _queue(engine: Engine, business_date: dt.date, phones: tuple[str, ...],
           run_id: str | None, held: dict[str, str] | None = None) -> tuple[int | None, bool]:
    """Pick sample renders, open a canary run and queue one message per canary phone.

    Returns (canary run id, reused). When every message this canary would send was already delivered
    by an earlier run (a rerun with unchanged renders), that run is reused: nothing is sent or added.
    """
    with engine.connect() as conn:
        samples = conn.execute(query("canary/samples"), {"business_date": business_date}).fetchall()
        primaries = [r for r in conn.execute(query("numbers/active")) if r.role == "primary"]
    # A canary is not critical: none goes out on a number whose quality dropped (include/delivery/cooldown.py).
    skipped = [r for r in primaries if r.phone_number_id in (held or {})]
    shards = sorted({r.shard for r in primaries if r.phone_number_id not in (held or {})})
    if skipped:
        from include.delivery.cooldown_store import record_hold

        with engine.begin() as conn:
            for r in skipped:
                record_hold(conn, business_date, r.phone_number_id, "canary",
                            max(1, len(phones) // max(1, len(primaries))), held[r.phone_number_id], "nightly_canary")
        log.warning("canary skips %s", "; ".join(held[r.phone_number_id] for r in skipped))
    if not samples or not shards or not phones:
        return None, False
    chosen = templates.decide_variants(engine).chosen
    wanted = []
    for i, phone in enumerate(phones):
        s = samples[i % len(samples)]
        language = s.language if s.language in chosen else "en"
        wanted.append({
            "idempotency_key": f"canary:{business_date}:{phone}:{s.render_id}",
            "business_date": business_date, "to_phone": phone, "sample_advisor_id": s.advisor_id,
            "render_id": s.render_id, "pack_id": s.pack_id, "segment": s.segment,
            "shard": shards[i % len(shards)], "template_name": chosen.get(language, ""),
            "template_language": language})
    with engine.begin() as conn:
        done = conn.execute(query("canary/existing"), {"keys": [w["idempotency_key"] for w in wanted]}).fetchall()
        if len(done) == len(wanted) and all(d.status in ("delivered", "read") for d in done):
            return max(d.canary_run_id for d in done), True
        run = conn.execute(query("canary/start_run"), {"business_date": business_date, "run_id": run_id,
                                                       "recipients": len(phones)}).scalar_one()
        conn.execute(query("canary/enqueue"), [w | {"canary_run_id": run} for w in wanted])
    return run, False


def _evidence(engine: Engine, keys: list[str]) -> dict[str, dict]:
    """Latest delivery status per key, from the status webhooks the receiver stored (what Meta gives)."""
    found: dict[str, dict] = {}
    rank = {"failed": 0, "delivered": 1, "read": 2}
    with engine.connect() as conn:
        for r in conn.execute(query("canary/webhook_statuses"), {"keys": keys}):
            if rank.get(r.status, -1) >= rank.get(found.get(r.biz_opaque, {}).get("status"), -1):
                errors = (r.payload or {}).get("errors") or [{}]
                found[r.biz_opaque] = {"status": r.status, "error": errors[0] if r.status == "failed" else None}
    return found


def run_canary(engine: Engine, settings: WhatsAppSettings, business_date: dt.date,
               phones: tuple[str, ...] | None = None,
               wait_s: float = config.CANARY_WAIT_S, context: dict | None = None,
               run_id: str | None = None) -> CheckResult:
    result = CheckResult("canary")
    phones = config.CANARY_PHONES if phones is None else phones
    if not phones:
        result.escalate(Severity.P1, "canary not sent: no canary list configured (set FA_CANARY_PHONES to the "
                                     "internal staff numbers)")
        result.summary = "canary not sent: no canary list"
        return result
    from include.delivery.cooldown_store import held_numbers

    held = held_numbers(engine, "canary")
    for why in held.values():
        result.facts.setdefault("canary held (quality cooldown)", []).append(why)
    run, reused = _queue(engine, business_date, phones, run_id, held)
    if run is None:
        result.escalate(Severity.P1, "canary not sent: no QC-passed render assigned for the date, no active "
                                     "primary number, or an empty canary list")
        result.summary = "canary not sent"
        return result
    if reused:
        verdict = latest_verdict(engine, business_date)
        result.facts.update(canary_run_id=run, reused=True)
        result.summary = f"unchanged since canary run {run}: {verdict.summary if verdict else 'delivered'}"
        return result
    options = SenderOptions(jitter_honoured=False, actor="nightly_canary",
                            hard_deadline_s=max(30.0, wait_s))
    with engine.connect() as conn:
        shards = [r.shard for r in conn.execute(query("canary/shards"), {"canary_run_id": run})]

    async def send_all():
        units = [Unit(business_date, shard, ("canary",)) for shard in shards]
        senders = [ShardSender(engine, settings, unit, options, context, queue=CanaryQueue(engine, unit, run),
                               monitored=False) for unit in units]
        return await asyncio.gather(*(s.run() for s in senders), return_exceptions=True)

    sent = asyncio.run(send_all())
    problems = [f"shard {shard}: {type(r).__name__}: {r}" for shard, r in zip(shards, sent, strict=True)
                if isinstance(r, BaseException)]

    deadline = time.monotonic() + wait_s
    while True:
        with engine.connect() as conn:
            waiting = conn.execute(query("canary/awaiting"), {"canary_run_id": run}).fetchall()
        if not waiting:
            break
        found = _evidence(engine, [w.idempotency_key for w in waiting])
        updates = []
        for w in waiting:
            ev = found.get(w.idempotency_key)
            if ev:
                err = ev.get("error") or {}
                updates.append({"delivery_id": w.delivery_id, "status": ev["status"],
                                "error_code": err.get("code", 0) if ev["status"] == "failed" else None,
                                "error_title": err.get("title") if ev["status"] == "failed" else None})
        if updates:
            with engine.begin() as conn:
                conn.execute(query("canary/mark_status"), updates)
        if len(updates) == len(waiting) or time.monotonic() >= deadline:
            break
        time.sleep(config.CANARY_POLL_S)

    with engine.connect() as conn:
        outcomes = conn.execute(query("canary/outcomes"), {"canary_run_id": run}).fetchall()
    not_delivered = [o for o in outcomes if o.status not in ("delivered", "read")]
    for o in not_delivered:
        why = o.error_title or o.skip_reason or ("no delivered status within the wait" if o.status in (
            "accepted", "sent") else f"status {o.status}")
        problems.append(f"{mask_phone(o.to_phone)} ({o.segment}, shard {o.shard}, {o.template_name}): "
                        f"{o.status}, {why}")
    passed = not problems
    summary = (f"{len(outcomes) - len(not_delivered)}/{len(outcomes)} canary messages delivered"
               + ("" if passed else f"; {len(problems)} problem(s)"))
    with engine.begin() as conn:
        counts = conn.execute(query("canary/finish_run"), {
            "canary_run_id": run, "status": "passed" if passed else "failed", "summary": summary,
            "details": json.dumps({"problems": problems})}).one()
    result.facts.update(canary_run_id=run, recipients=counts.recipients, accepted=counts.accepted,
                        delivered=counts.delivered, failed=counts.failed)
    if not passed:
        result.escalate(Severity.P1, summary)
        result.items.extend(problems)
        post(Alert(Severity.P1, f"Nightly canary failed for {business_date}", dict(result.facts),
                   RunRef.from_context(context), problems))
    result.summary = summary
    log.info("canary %s for %s: %s", run, business_date, summary)
    return result


def latest_verdict(engine: Engine, business_date: dt.date):
    with engine.connect() as conn:
        return conn.execute(query("canary/latest"), {"business_date": business_date}).fetchone()
