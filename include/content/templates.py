"""WhatsApp template status: sync from the API into `whatsapp_templates`, then decide which variant
each language uses today. A PAUSED/DISABLED primary switches to the first APPROVED backup variant
(P1); no approved variant for a language is a P0. Shared by the nightly window and the pre-delivery check.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from include.core.alerting import Severity
from include.core.db import query
from include.whatsapp.client import WhatsAppClient

log = logging.getLogger(__name__)

PURPOSE_DAILY_PACK = "daily_pack"
_QUALITY = {"GREEN": "GREEN", "YELLOW": "YELLOW", "RED": "RED", "HIGH": "GREEN", "MEDIUM": "YELLOW", "LOW": "RED"}


@dataclass
class TemplateDecision:
    chosen: dict[str, str] = field(default_factory=dict)          # language -> template name
    switched: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # language -> (primary, status, backup)
    missing: dict[str, list[str]] = field(default_factory=dict)   # language -> statuses seen
    unknown_remote: list[str] = field(default_factory=list)

    @property
    def severity(self) -> Severity:
        if self.missing:
            return Severity.P0
        if self.switched:
            return Severity.P1
        return Severity.INFO


def sync_templates(engine: Engine, client: WhatsAppClient) -> int:
    """Copy every remote template's status and quality into the database; returns how many."""
    remote = client.list_templates()
    with engine.begin() as conn:
        for t in remote:
            quality = t.get("quality_score") or {}
            score = quality.get("score") if isinstance(quality, dict) else str(quality)
            body = next((c for c in t.get("components") or [] if str(c.get("type")).upper() == "BODY"), {})
            conn.execute(query("templates/upsert_status"), {
                "name": t["name"], "language": t.get("language", "en"), "category": t.get("category", "MARKETING"),
                "status": t.get("status", "PENDING"), "quality": _QUALITY.get(str(score).upper(), "UNKNOWN"),
                "wa_template_id": str(t.get("id", "")), "body_param_count": str(body.get("text", "")).count("{{")})
    return len(remote)


def decide_variants(engine: Engine, purpose: str = PURPOSE_DAILY_PACK) -> TemplateDecision:
    """Per language: the lowest-ranked APPROVED variant, noting switches away from the primary. While a number is
    in a quality-drop cooldown (include/delivery/cooldown_store.py), the primary is passed over for an APPROVED
    backup variant when there is one (runbook 000: switch to the backup variant on a quality drop)."""
    decision = TemplateDecision()
    with engine.connect() as conn:
        rows = conn.execute(query("templates/variants"), {"purpose": purpose}).fetchall()
        dropped = [r.display_phone for r in conn.execute(query("cooldown/open_ramps"))]
    by_lang: dict[str, list] = {}
    for r in rows:
        by_lang.setdefault(r.language, []).append(r)
    for lang, variants in by_lang.items():
        primary = variants[0]
        approved = [v for v in variants if v.status == "APPROVED"]
        if not approved:
            decision.missing[lang] = [f"{v.name}={v.status}" for v in variants]
            continue
        backups = [v for v in approved if v.name != primary.name]
        if dropped and backups and approved[0].name == primary.name:
            decision.chosen[lang] = backups[0].name
            decision.switched[lang] = (primary.name, f"held back during the quality cooldown of "
                                                     f"{', '.join(dropped)}", backups[0].name)
            continue
        decision.chosen[lang] = approved[0].name
        if approved[0].name != primary.name:
            decision.switched[lang] = (primary.name, primary.status, approved[0].name)
    return decision

