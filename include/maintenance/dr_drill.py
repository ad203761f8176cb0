"""The monthly DR drill: restore the newest *verified* backup into a fresh database, measure the RTO
(time to restore) and the RPO (age of the newest data the restore brings back), and dry-run the
delivery planning on the restored copy to check it reproduces the plan production has for the same date.

Only a backup whose restore verification passed (`backups.verify_ok`) is used: a drill on a file nobody
proved restorable measures nothing a real recovery could rely on. With no verified backup the drill
refuses, raises a P1 and says which backups exist and why none qualifies.
"""
from __future__ import annotations

import datetime as dt
import json
import logging

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.maintenance import backups

from include.core import config
from include.core.checks import CheckResult
from include.core.alerting import Alert, RunRef, Severity, post
from include.core.db import query

log = logging.getLogger(__name__)


def _plan(engine: Engine, day: dt.date) -> set[tuple]:
    with engine.connect() as conn:
        return {tuple(r) for r in conn.execute(query("dr/plan_rows"), {"business_date": day})}


def _describe(b) -> str:
    state = "not verified yet" if b.verify_ok is None else "verified OK" if b.verify_ok else "FAILED verification"
    return f"backup {b.backup_id} ({b.kind}, {b.snapshot_at:%Y-%m-%d %H:%M} UTC): {state}"


def _refuse(engine: Engine, result: CheckResult, backup_id: int | None, context: dict | None) -> CheckResult:
    kept = backups.recent(engine)
    which = f"backup {backup_id} has not passed its restore verification" if backup_id else \
        "no kept backup has passed its restore verification"
    result.escalate(Severity.P1, f"DR drill refused: {which}; restoring an unverified backup proves nothing. "
                                 "Run verify_backup_restore (daily_backup) and fix what it reports")
    result.items.extend(_describe(b) for b in kept)
    result.facts.update(backup_id=None, refused=True, recent_backups=[_describe(b) for b in kept])
    result.summary = f"refused: {which}"
    post(Alert(Severity.P1, f"DR drill refused: {which}", {"kept backups": len(kept)}, RunRef.from_context(context),
               result.items[1:] or ["no backups are kept at all"]))
    log.error("DR drill refused: %s", which)
    return result


def dr_drill(engine: Engine, backup_id: int | None = None, now: dt.datetime | None = None,
             context: dict | None = None) -> CheckResult:
    from include.delivery import planning

    result = CheckResult("dr_drill")
    backup = backups.latest_verified(engine, backup_id)
    if backup is None:
        return _refuse(engine, result, backup_id, context)
    newer_unverified = [_describe(b) for b in backups.recent(engine)
                        if (b.snapshot_at, b.backup_id) > (backup.snapshot_at, backup.backup_id)]
    now = now or dt.datetime.now(dt.UTC)
    plan_date = plan_rows = matches = None
    diff: list[str] = []
    with backups.scratch_database(engine, "dr_drill") as restored:
        rto = backups.restore(backup, restored)
        with restored.connect() as conn:
            newest = conn.execute(sa.text(backups.NEWEST_DATA)).scalar()
            plan_date = conn.execute(sa.text("SELECT max(business_date) FROM delivery_plan")).scalar()
            chosen = {r.template_language: r.template_name for r in conn.execute(query("dr/plan_templates"),
                                                                                  {"business_date": plan_date})}
        if plan_date is not None:
            with restored.begin() as conn:
                conn.execute(sa.text("DELETE FROM delivery_plan WHERE business_date = :d"), {"d": plan_date})
            planning.build_plan(restored, plan_date, chosen)  # the dry run: writes only into the scratch copy
            rebuilt, source = _plan(restored, plan_date), _plan(engine, plan_date)
            plan_rows, matches = len(rebuilt), rebuilt == source
            diff = [f"only in the restored plan: {r}" for r in sorted(rebuilt - source)[:5]] + \
                   [f"only in production's plan: {r}" for r in sorted(source - rebuilt)[:5]]
    rpo = (now - newest).total_seconds() if newest else None
    result.facts.update(backup_id=backup.backup_id, backup=backup.uri, backup_verified_at=str(backup.verified_at),
                        skipped_newer_unverified=newer_unverified, rto_s=round(rto, 1),
                        rto_target_s=config.RTO_TARGET_S,
                        rpo_s=round(rpo, 1) if rpo is not None else None, rpo_target_s=config.RPO_TARGET_S,
                        plan_date=str(plan_date) if plan_date else None, plan_rows=plan_rows, plan_matches=matches)
    if rto > config.RTO_TARGET_S:
        result.escalate(Severity.P1, f"RTO {rto:.0f} s exceeds the target {config.RTO_TARGET_S} s")
    if rpo is None or rpo > config.RPO_TARGET_S:
        result.escalate(Severity.P2, f"RPO {rpo:.0f} s exceeds the target {config.RPO_TARGET_S} s: backups are "
                                     "periodic pg_dumps; a 15-minute RPO needs WAL archiving (point-in-time recovery)"
                        if rpo is not None else "the backup holds no data to date the RPO")
    if matches is False:
        result.escalate(Severity.P1, f"planning on the restored copy does not reproduce the {plan_date} plan")
        result.items.extend(diff)
    with engine.begin() as conn:
        conn.execute(query("dr/record"), {
            "backup_id": backup.backup_id, "rto_s": rto, "rpo_s": rpo, "rto_target_s": config.RTO_TARGET_S,
            "rpo_target_s": config.RPO_TARGET_S, "plan_date": plan_date, "plan_rows": plan_rows,
            "plan_matches": matches, "ok": result.ok, "details": json.dumps({"items": result.items})})
    result.summary = (f"restored backup {backup.backup_id} in {rto:.1f} s (RTO target {config.RTO_TARGET_S} s), "
                      f"RPO {rpo:.0f} s (target {config.RPO_TARGET_S} s), plan "
                      f"{'reproduced' if matches else 'NOT reproduced' if matches is False else 'not checked'}"
                      if rpo is not None else f"restored backup {backup.backup_id} in {rto:.1f} s")
    log.info("DR drill: %s", result.as_dict())
    return result
