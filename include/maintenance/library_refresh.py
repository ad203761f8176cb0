"""Monthly refresh of the template and fallback libraries.

* Templates: after a status sync, daily-pack templates with LOW quality (RED), nearing a pause
  (YELLOW) or already PAUSED get a new variant prepared and submitted through the template-creation
  endpoint (the sandbox's here, Meta's in production); it is recorded locally as the next backup
  variant, PENDING until Meta approves it. While a submitted variant of that language is still
  pending, nothing more is submitted (a rerun does not submit twice).
* Fallbacks: evergreen packs older than N months or used more than K times are retired (with the
  reason); fewer than the required fresh fallbacks left is a P1, because the 7-day rotation then repeats.
"""
from __future__ import annotations

import logging
import re

from sqlalchemy.engine import Engine

from include.core import config

from include.content import templates
from include.core.alerting import Severity
from include.core.checks import CheckResult
from include.core.db import query
from include.whatsapp.client import WhatsAppClient, WhatsAppError

log = logging.getLogger(__name__)

# The daily pack body: advisor name, pack title, disclaimer (3 parameters, as the sender fills them).
BODY = "Good morning {{1}}! Today's pack: {{2}}. {{3}}"


def _next_name(name: str, taken: set[str]) -> str:
    m = re.match(r"^(.*?)(?:_v(\d+))?$", name)
    base, n = m.group(1), int(m.group(2) or 1)
    while True:
        n += 1
        candidate = f"{base}_v{n}"
        if candidate not in taken:
            return candidate


def refresh_templates(engine: Engine, client: WhatsAppClient) -> CheckResult:
    result = CheckResult("template_refresh")
    templates.sync_templates(engine, client)
    with engine.connect() as conn:
        rows = conn.execute(query("refresh/daily_templates")).fetchall()
    taken = {r.name for r in rows}
    flagged = [r for r in rows if r.quality in ("RED", "YELLOW") or r.status == "PAUSED"]
    submitted, skipped = [], []
    for r in flagged:
        in_flight = [x for x in rows if x.language == r.language and x.status in ("PENDING", "IN_APPEAL")]
        if in_flight:
            skipped.append(f"{r.name}: {in_flight[0].name} already submitted and {in_flight[0].status}")
            continue
        name = _next_name(r.name, taken)
        taken.add(name)
        rank = max(x.variant_rank for x in rows if x.language == r.language) + 1
        try:
            resp = client.create_template(name, r.language, r.category, [
                {"type": "HEADER", "format": "IMAGE"}, {"type": "BODY", "text": BODY}])
        except WhatsAppError as exc:
            result.escalate(Severity.P1, f"could not submit {name} ({r.language}): {exc}")
            continue
        with engine.begin() as conn:
            conn.execute(query("refresh/record_template"), {
                "name": name, "language": r.language, "variant_rank": rank, "category": r.category,
                "status": resp.get("status", "PENDING"), "wa_template_id": str(resp.get("id", ""))})
        submitted.append(f"{name} ({r.language}) replacing {r.name}: {r.status}/{r.quality}")
    result.facts.update(flagged=[f"{r.name} ({r.language}): {r.status}/{r.quality}" for r in flagged],
                        submitted=submitted, skipped=skipped)
    if flagged and submitted:
        result.escalate(Severity.P2, f"{len(submitted)} new template variant(s) submitted for approval")
        result.items.extend(submitted)
    result.summary = f"{len(flagged)} template(s) flagged, {len(submitted)} variant(s) submitted"
    return result


def refresh_fallbacks(engine: Engine, max_age_months: int | None = None,
                      max_uses: int | None = None,
                      min_fresh: int | None = None) -> CheckResult:
    max_age_months = config.FALLBACK_MAX_AGE_MONTHS if max_age_months is None else max_age_months
    max_uses = config.FALLBACK_MAX_USES if max_uses is None else max_uses
    min_fresh = config.FALLBACK_MIN_FRESH if min_fresh is None else min_fresh
    result = CheckResult("fallback_refresh")
    with engine.begin() as conn:
        retired = conn.execute(query("refresh/retire_fallbacks"), {"max_age_months": max_age_months,
                                                                   "max_uses": max_uses}).fetchall()
        fresh = conn.execute(query("refresh/fresh_fallbacks")).scalar_one()
    result.facts.update(retired=[f"{r.pack_key}: {r.retired_reason}" for r in retired], fresh_remaining=fresh,
                        required=min_fresh)
    if fresh < min_fresh:
        result.escalate(Severity.P1, f"only {fresh} fresh evergreen fallback pack(s) left, {min_fresh} needed for the "
                                     f"{config.FALLBACK_ROTATION_DAYS}-day rotation: ask content for new ones")
    result.items.extend(f"retired {r.pack_key}: {r.retired_reason}" for r in retired)
    result.summary = f"{len(retired)} retired, {fresh} fresh left (need {min_fresh})"
    return result
