"""Content review of a number whose quality dropped (runbook 000): the last FA_COOLDOWN_REVIEW_DAYS days' packs
sent on it, with their QC findings (the renders' QC trail) and compliance findings (the render-QC rules engine's
compliance rules over the pack text, the pack's approval, and the compliance rules among the render findings),
written as HTML (Jinja2) and JSON under reviews/quality/<date>/ in object storage."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.engine import Engine

from include.core import config
from include.core.db import query

TEMPLATES = Path(__file__).with_name("templates")
# Render-QC rules about what the text says (compliance) rather than how the image came out (QC).
COMPLIANCE_RULES = ("DISC-MISSING", "CMP-BANNED-CLAIM", "CMP-REG-MISSING", "CMP-REG-FORMAT")


def _text_findings(title: str, body: str, disclaimer: str) -> list[dict]:
    """The compliance rules that read only the pack text, from the render-QC rules engine itself."""
    from include.content import render_qc

    rules = tuple(r for r in render_qc.RULES if r.rule_id in ("DISC-MISSING", "CMP-BANNED-CLAIM"))
    result = render_qc.check(render_qc.QCInput(b"", {}, title, body, disclaimer, ""), rules)
    return [f.as_dict() for f in result.failures]


def collect(engine: Engine, phone_number_id: str, until: dt.date, days: int | None = None) -> list[dict]:
    days = config.COOLDOWN_REVIEW_DAYS if days is None else days
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query("cooldown/content_review"),
                                                       {"n": phone_number_id, "until": until, "days": days})]
    packs = []
    for r in rows:
        reasons = [x if isinstance(x, dict) else {"rule": "QC", "detail": str(x)} for x in r.pop("qc_reasons") or []]
        qc = [x for x in reasons if x.get("rule") not in COMPLIANCE_RULES]
        compliance = [x for x in reasons if x.get("rule") in COMPLIANCE_RULES]
        seen = {(x.get("rule"), x.get("detail")) for x in compliance}
        compliance += [f for f in _text_findings(r["title"], r["body"], r["disclaimer"])
                       if (f["rule"], f["detail"]) not in seen]
        if r["pack_status"] != "approved":
            compliance.append({"rule": "PACK-NOT-APPROVED", "detail": f"pack status {r['pack_status']}"})
        if r["renders_not_passed"]:
            qc.append({"rule": "NO-QC-PASSED-RENDER",
                       "detail": f"{r['renders_not_passed']} message(s) sent without a QC-passed render"})
        packs.append({**{k: v for k, v in r.items() if k not in ("body", "disclaimer")},
                      "business_date": r["business_date"].isoformat(), "qc_findings": qc,
                      "compliance_findings": compliance})
    return packs


def render_html(report: dict) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, autoescape=select_autoescape(default=True, default_for_string=True))
    return env.get_template("content_review.html.j2").render(**report)


def write_review(engine: Engine, phone_number_id: str, display_phone: str, quality: str, until: dt.date,
                 recorded_at: dt.datetime) -> dict:
    """Build and store the review; returns {"html": uri, "json": uri, "packs": n, "with_findings": n}."""
    from include.core.storage import data_root

    days = config.COOLDOWN_REVIEW_DAYS
    packs = collect(engine, phone_number_id, until, days)
    totals = {"messages": sum(p["messages"] for p in packs),
              "with_findings": sum(1 for p in packs if p["qc_findings"] or p["compliance_findings"])}
    report = {"number": display_phone, "phone_number_id": phone_number_id, "quality": quality,
              "until": until.isoformat(), "days": days, "recorded_at": recorded_at.isoformat(), "packs": packs,
              "totals": totals}
    folder = data_root() / "reviews" / "quality" / until.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    uris = {}
    for name, text in ((f"{phone_number_id}.html", render_html(report)),
                       (f"{phone_number_id}.json", json.dumps(report, indent=2, default=str))):
        path = folder / name
        path.write_text(text)
        uris["html" if name.endswith(".html") else "json"] = str(path)
    return {**uris, "packs": len(packs), "with_findings": totals["with_findings"]}
