"""The nightly content window (20:30 IST) for tomorrow's business date: approval backlog, pre-render
with render QC, fallback assignment and the window's summary. The canary lives in include/content/canary.py.

Renders are content-addressed: the object name is the sha256 of every input that changes the image
(renderer, pack text and artwork, advisor card), computed in SQL (sql/queries/render/targets.sql) so
that an unchanged rerun is one query that finds nothing to do. An identical render made on another
date (evergreen packs) is reused after its stored object is re-checked, not drawn again.

Writes are ordered so that a crash leaves nothing half-done: the object is written first (same name
for the same inputs, so a rewrite is harmless), then its row; a row never points at a missing object.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Engine

from include.core import config

from include.content import readiness as content
from include.core.alerting import Alert, RunRef, Severity, post
from include.core.checks import CheckResult
from include.core.db import query
from include.content.render_qc import QCInput, check
from include.content.rendering import AdvisorCard, PackContent, PackRenderer, renderer_id

log = logging.getLogger(__name__)


# -- approval backlog --------------------------------------------------------------------------------
def approval_backlog_check(engine: Engine, business_date: dt.date, threshold: int | None = None,
                           context: dict | None = None) -> CheckResult:
    """Count tomorrow's pending packs; above the threshold, a P2 to the approvers' channel."""
    threshold = config.PENDING_BACKLOG_THRESHOLD if threshold is None else threshold
    pending = content.approval_backlog(engine, business_date)
    per_segment = Counter(p.segment or ("advisor-specific" if p.advisor_id else "all") for p in pending)
    result = CheckResult("approval_backlog")
    result.facts.update(pending=len(pending), threshold=threshold, per_segment=dict(sorted(per_segment.items())))
    oldest = [f"{p.pack_key} (risk {p.risk_level}, waiting since {p.submitted_at:%Y-%m-%d %H:%M} UTC)"
              for p in pending[:10]]
    if len(pending) > threshold:
        result.escalate(Severity.P2, f"{len(pending)} packs for {business_date} pending approval "
                                     f"(threshold {threshold})")
        post(Alert(Severity.P2, f"Approval backlog for {business_date}: {len(pending)} packs pending",
                   {"threshold": threshold, **{f"pending · {k}": v for k, v in sorted(per_segment.items())}},
                   RunRef.from_context(context), [f"oldest: {o}" for o in oldest]),
             conn_id=config.SLACK_APPROVERS_CONN_ID)
    result.summary = f"{len(pending)} pending (threshold {threshold})"
    result.facts["oldest"] = oldest[:5]
    return result


def bulk_approve(engine: Engine, business_date: dt.date, max_risk: int, reason: str, actor: str,
                 pack_ids: list[int] | None = None, via: str | None = None) -> dict:
    """Approve the date's pending packs up to a risk level that may be bulk-approved (only `pack_ids` when given:
    what the approvers were offered); one audit row each."""
    from include.core.audit import record

    if not 1 <= max_risk <= config.BULK_APPROVE_MAX_RISK:
        raise ValueError(f"max_risk {max_risk} is not a low risk level: bulk approval allows 1.."
                         f"{config.BULK_APPROVE_MAX_RISK}; approve riskier packs one by one")
    if len((reason or "").strip()) < 5:
        raise ValueError("a reason of at least 5 characters is required for the audit trail")
    with engine.begin() as conn:
        approved = conn.execute(query("content/bulk_approve"), {
            "business_date": business_date, "max_risk": max_risk, "actor": actor,
            "pack_ids": None if pack_ids is None else list(pack_ids)}).fetchall()
        for row in approved:
            record(conn, actor, "bulk_approve_pack", row.pack_key, reason,
                   {"pack_id": row.pack_id, "risk_level": row.risk_level, "business_date": str(business_date),
                    "max_risk": max_risk, **({"via": via} if via else {})})
        left = conn.execute(query("content/pending_for_date"), {"business_date": business_date}).fetchall()
    out = {"business_date": str(business_date), "decided_by": actor, "approved": [r.pack_key for r in approved],
           "still_pending": len(left),
           "left_for_individual_review": [r.pack_key for r in left if r.risk_level > max_risk]}
    log.info("bulk approval for %s by %s: %s", business_date, actor, out)
    return out


# -- render batches ---------------------------------------------------------------------------------------
def render_batches(engine: Engine, business_date: dt.date, batch_size: int | None = None,
                   max_tasks: int | None = None) -> list[dict]:
    """Mapped render tasks: advisor_id modulo n, n bounded; at least 2 so both cores work."""
    batch_size = config.RENDER_BATCH_SIZE if batch_size is None else batch_size
    max_tasks = config.MAX_RENDER_TASKS if max_tasks is None else max_tasks
    with engine.connect() as conn:
        eligible = conn.execute(query("render/eligible_count")).scalar_one()
    if eligible == 0:
        return []
    n = max(2, min(max_tasks, math.ceil(eligible / batch_size)))
    return [{"business_date": business_date.isoformat(), "batch": b, "batch_count": n,
             "label": f"batch {b + 1} of {n} (~{math.ceil(eligible / n):,} advisors)"} for b in range(n)]


@dataclass
class BatchStats:
    mode: str
    batch: int
    batch_count: int
    targets: int = 0
    rendered: int = 0
    reused: int = 0
    passed: int = 0
    failed: int = 0
    failures_by_rule: dict[str, int] = field(default_factory=dict)
    bytes_written: int = 0
    elapsed_s: float = 0.0
    peak_rss_mb: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _object_path(input_sha256: str):
    from include.core.storage import render_root

    return render_root() / input_sha256[:2] / f"{input_sha256}.jpg"


def _read_object(uri: str) -> bytes | None:
    from airflow.sdk import ObjectStoragePath

    path = ObjectStoragePath(uri)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _artwork_bytes(artwork: str, cache: dict[str, bytes | None]) -> bytes | None:
    """Uploaded artwork lives at <data root>/artwork/<name>.jpg|png; none means the generated gradient."""
    if artwork not in cache:
        from include.core.storage import data_root

        cache[artwork] = None
        for ext in ("jpg", "png"):
            path = data_root() / "artwork" / f"{artwork}.{ext}"
            if path.exists():
                cache[artwork] = path.read_bytes()
                break
    return cache[artwork]


def render_batch(engine: Engine, business_date: dt.date, batch: int, batch_count: int, mode: str = "approved",
                 renderer: PackRenderer | None = None) -> dict:
    """Render and QC one batch's missing or changed renders, streaming targets and writing in batches."""
    if mode not in ("approved", "fallback"):
        raise ValueError(f"unknown render mode {mode!r}")
    started = time.monotonic()
    stats = BatchStats(mode, batch, batch_count)
    renderer = renderer or PackRenderer()
    failures: Counter[str] = Counter()
    artwork_cache: dict[str, bytes | None] = {}
    pending: list[dict] = []

    def flush() -> None:
        if pending:
            with engine.begin() as conn:
                conn.execute(query("render/upsert"), pending)
            pending.clear()

    params = {"business_date": business_date, "batch": batch, "batch_count": batch_count, "mode": mode,
              "renderer": renderer_id()}
    with engine.connect() as reader:
        rows = reader.execution_options(yield_per=config.RENDER_WRITE_BATCH).execute(query("render/targets"), params)
        for t in rows:
            stats.targets += 1
            t0 = time.perf_counter()
            pack = PackContent(t.pack_id, t.pack_key, t.title, t.body, t.disclaimer, t.artwork)
            card = AdvisorCard(t.name, t.registration_no, t.phone_e164, t.contact_email)
            data = manifest = None
            uri = None
            if t.reuse_storage_uri:  # identical inputs rendered before (another date): re-check, do not redraw
                data = _read_object(t.reuse_storage_uri)
                if data is not None:
                    uri = t.reuse_storage_uri
                    manifest = _reuse_manifest(engine, t.reuse_render_id)
                    stats.reused += 1
            if data is None or manifest is None:
                out = renderer.render(pack, card, _artwork_bytes(t.artwork, artwork_cache))
                data, manifest = out.data, out.manifest
                path = _object_path(t.input_sha256)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                uri = str(path)
                stats.rendered += 1
                stats.bytes_written += len(data)
            qc = check(QCInput(data, manifest, t.title, t.body, t.disclaimer, t.registration_no))
            failures.update(qc.rule_ids)
            if qc.passed:
                stats.passed += 1
            else:
                stats.failed += 1
            width, height = manifest.get("width"), manifest.get("height")
            pending.append({
                "business_date": business_date, "advisor_id": t.advisor_id, "pack_id": t.pack_id,
                "input_sha256": t.input_sha256, "storage_uri": uri,
                "content_sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                "width": width, "height": height, "mime_type": "image/jpeg" if data[:2] == b"\xff\xd8" else None,
                "qc_status": "passed" if qc.passed else "failed",
                "qc_reasons": json.dumps([f.as_dict() | {"sources": ["rules"]} for f in qc.failures]),
                "manifest": json.dumps(manifest), "render_ms": round((time.perf_counter() - t0) * 1000)})
            if len(pending) >= config.RENDER_WRITE_BATCH:
                flush()
    flush()
    stats.failures_by_rule = dict(failures)
    stats.elapsed_s = round(time.monotonic() - started, 3)
    stats.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    log.info("render %s batch %d/%d for %s: %s", mode, batch + 1, batch_count, business_date, stats.as_dict())
    return stats.as_dict()


_manifests: dict[int, dict] = {}


def _reuse_manifest(engine: Engine, render_id: int) -> dict | None:
    if render_id not in _manifests:
        with engine.connect() as conn:
            row = conn.execute(query("render/reuse_source"), {"render_ids": [render_id]}).fetchone()
        if row is None or not row.manifest:
            return None
        if len(_manifests) > 256:
            _manifests.clear()
        _manifests[render_id] = row.manifest
    return _manifests[render_id]


# -- fallback assignment ------------------------------------------------------------------------------------
def assign_fallbacks(engine: Engine, business_date: dt.date) -> dict:
    """The shared assignment (approved QC-passed content first, else a rotating evergreen fallback)."""
    a = content.assign_content(engine, business_date)
    return {"eligible": a.eligible, "assigned": a.assigned, "approved": a.approved, "fallback": a.fallback,
            "newly_fallback": a.newly_fallback, "demoted": a.demoted}


def finalize_fallbacks(engine: Engine, business_date: dt.date, max_rounds: int = 3) -> dict:
    """Point fallback assignments at their QC-passed render. A fallback whose render failed QC gets
    another evergreen pack (never the failed one), rendered here; bounded rounds."""
    rounds = []
    for _ in range(max_rounds):
        with engine.begin() as conn:
            linked = conn.execute(query("render/link_fallbacks"), {"business_date": business_date}).rowcount
        a = content.assign_content(engine, business_date)  # demotes failed fallbacks and re-assigns
        rounds.append({"linked": linked, "reassigned": a.demoted})
        if not a.demoted:
            break
        render_batch(engine, business_date, 0, 1, mode="fallback")
    with engine.begin() as conn:
        conn.execute(query("render/link_fallbacks"), {"business_date": business_date})
        row = conn.execute(query("content/readiness"), {"business_date": business_date}).one()
    return {"eligible": row.eligible, "assigned": row.assigned, "approved": row.approved, "fallback": row.fallback,
            "rounds": rounds}


# -- summary ---------------------------------------------------------------------------------------------------
def render_summary(engine: Engine, business_date: dt.date) -> dict[str, Any]:
    with engine.connect() as conn:
        s = conn.execute(query("render/stats"), {"business_date": business_date}).one()
        by_rule = conn.execute(query("render/failures_by_rule"), {"business_date": business_date}).fetchall()
    return {"renders": s.renders, "passed": s.passed, "failed": s.failed, "pending": s.pending,
            "bytes": int(s.bytes), "failures_by_rule": {r.rule_id: r.renders for r in by_rule},
            "failure_examples": {r.rule_id: r.example_pack for r in by_rule}}


def publish_window_summary(engine: Engine, business_date: dt.date, reported: Mapping[str, dict | None],
                           context: Mapping[str, Any] | None = None) -> dict:
    """One Slack summary: pending, rendered, QC failures by rule, fallbacks, canary; the worst severity pages.
    `reported` is what the DAG wiring hands over, by task id; a step that did not report is a P1."""
    from include.core.checks import collect, summarise

    renders = render_summary(engine, business_date)
    fallbacks = reported.get("finalize_fallback_renders")
    checks = {k: v for k, v in reported.items() if k != "finalize_fallback_renders"}
    results = collect(checks, missing=Severity.P1)
    severities, details = [], []
    if not fallbacks:
        severities.append(Severity.P1)
        details.append("finalize_fallback_renders did not report (see its log)")
    elif fallbacks.get("assigned", 0) < fallbacks.get("eligible", 0):
        severities.append(Severity.P0)
        details.append(f"{fallbacks['eligible'] - fallbacks['assigned']} advisors have no content for the morning")
    backlog = reported.get("check_approval_backlog") or {}
    facts = {
        "pending approval": (backlog.get("facts") or {}).get("pending", "n/a"),
        "renders": f"{renders['passed']} passed / {renders['failed']} failed QC",
        "QC failures by rule": ", ".join(f"{k} {v}" for k, v in renders["failures_by_rule"].items()) or "none",
        "fallbacks": (f"{fallbacks['fallback']} of {fallbacks['eligible']} advisors" if fallbacks else "n/a"),
        "content assigned": (f"{fallbacks['assigned']}/{fallbacks['eligible']}" if fallbacks else "n/a"),
    }
    alert = summarise("Nightly content window", business_date, results,
                      RunRef.from_context(context), facts=facts, severities=severities, details=details)
    return {"severity": alert.severity.value, **renders, "fallbacks": fallbacks,
            "canary": reported.get("send_canary")}
