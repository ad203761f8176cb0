"""Task entry points of the maintenance DAGs (weekly_maintenance, monthly_maintenance, daily_backup).

Each returns a CheckResult-shaped dict (recorded in `check_results`) so the summary task can post one
Slack message with the worst severity; the work itself lives in the modules named below.

`weekly_maintenance` with `dry_run: true` changes nothing anywhere: every step reports what it would do
(tables to vacuum, indexes to reindex, rows and files to archive, renders to remove, Airflow records,
the tables a backup would dump, backups retention would delete) and does none of it. Backups included:
a dry run takes no backup and restores none, because taking one is not free of effects (a new file, a
`backups` row, and it would push the oldest weekly backup out of retention); nothing is deleted in a
dry run, so nothing needs the protection of a fresh backup. The only writes are the run's own records
(`check_results`) and the Slack summary.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from include.core.alerting import RunRef, Severity
from include.core.checks import CheckResult, collect, finish, summarise
from include.core.dates import TODAY, business_date
from include.core.db import get_engine


def _done(result: CheckResult, context: dict, dag_id: str) -> dict:
    return finish(get_engine(), result, business_date(context), context, dag_id)


def _params(context: dict) -> dict:
    return context.get("params") or {}


def _dry_run(context: dict) -> bool:
    return bool(_params(context).get("dry_run"))


# -- weekly -----------------------------------------------------------------------------------------------
def run_db_upkeep(context: dict) -> dict:
    from include.maintenance.db_upkeep import upkeep

    dry = _dry_run(context)
    out = upkeep(get_engine(), dry_run=dry)
    r = CheckResult("db_upkeep")
    r.facts.update(vacuumed=list(out["vacuum"]["vacuumed"]), reindexed=[x["index"] for x in out["reindex"][
        "reindexed"]], would_vacuum=list(out["vacuum"]["would_vacuum"]),
        would_reindex=[x["index"] for x in out["reindex"]["would_reindex"]],
        slow_queries=out["slow_queries"].get("top", [])[:5], dry_run=dry)
    for part in ("reindex", "slow_queries"):
        if not out[part]["available"]:
            r.items.append(out[part]["reason"])  # said plainly, but not a failure
    report = f"slow-query report {'included' if out['slow_queries']['available'] else 'unavailable'}"
    if dry:
        r.summary = (f"dry run: would vacuum {len(r.facts['would_vacuum'])} table(s) "
                     f"({', '.join(r.facts['would_vacuum']) or 'none'}), would reindex "
                     f"{len(r.facts['would_reindex'])} index(es) ({', '.join(r.facts['would_reindex']) or 'none'}); "
                     f"nothing run; {report}")
    else:
        r.summary = (f"vacuumed {len(out['vacuum']['vacuumed'])} table(s), reindexed "
                     f"{len(out['reindex']['reindexed'])} index(es); {report}")
    return _done(r, context, "weekly_maintenance") | {"details": out}


def run_clean_render_cache(context: dict) -> dict:
    from include.maintenance.retention import clean_render_cache

    out = clean_render_cache(get_engine(), business_date(context), dry_run=_dry_run(context))
    verb = ("would remove", "would free") if out["dry_run"] else ("removed", "freed")
    r = CheckResult("render_cache_cleanup", summary=("dry run: " if out["dry_run"] else "") +
                    f"{verb[0]} {out['removed']} render(s), {out['bytes_freed'] / 1e6:.1f} MB {verb[1]}; kept "
                    f"{out['kept_old_but_needed']} old render(s) still needed")
    r.facts.update(out)
    return _done(r, context, "weekly_maintenance")


def run_archive_old_rows(context: dict) -> dict:
    from include.maintenance.retention import archive_old_rows

    dry = _dry_run(context)
    out = archive_old_rows(get_engine(), business_date(context), dry_run=dry)
    tables = {t: v for t, v in out.items() if isinstance(v, dict)}
    if dry:
        summary = "dry run: nothing archived or deleted; " + ", ".join(
            f"{t}: would archive {v['would_archive_rows']} row(s) into {v['would_write_files']} file(s)"
            for t, v in tables.items())
    else:
        summary = ", ".join(f"{t}: {v['archived_rows']} archived" for t, v in tables.items())
    r = CheckResult("retention", summary=summary)
    r.facts.update(out)
    return _done(r, context, "weekly_maintenance")


def run_clean_airflow_metadata(context: dict) -> dict:
    from include.maintenance.retention import clean_airflow_metadata

    out = clean_airflow_metadata(dry_run=_dry_run(context))
    r = CheckResult("airflow_metadata_cleanup", summary=f"airflow db clean before {out['clean_before']}"
                                                        + (" (dry run: --dry-run, nothing deleted)"
                                                           if out["dry_run"] else ""))
    r.facts.update(out)
    return _done(r, context, "weekly_maintenance")


def run_backup(context: dict, kind: str, dag_id: str) -> dict:
    from include.maintenance.backups import preview_backup, take_backup

    if _dry_run(context):
        out = preview_backup(get_engine(), kind)
        r = CheckResult("backup", summary=f"dry run: no backup taken; would dump {len(out['would_dump_tables'])} "
                                          f"table(s), database {out['database_bytes'] / 1e6:.1f} MB")
        r.facts.update(out)
        return _done(r, context, dag_id)
    out = take_backup(get_engine(), kind)
    r = CheckResult("backup", summary=f"{kind} backup {out['backup_id']}: {out['bytes'] / 1e6:.1f} MB, "
                                      f"{out['tables']} tables, sha256 {out['sha256'][:12]}…")
    r.facts.update(out)
    return _done(r, context, dag_id)


def run_verify_backup(backup: dict, context: dict, dag_id: str) -> dict:
    from include.maintenance.backups import apply_retention, verify_backup

    if _dry_run(context):
        retention = apply_retention(get_engine(), dry_run=True)
        r = CheckResult("backup_verification", summary=f"dry run: nothing restored or deleted; backup retention "
                                                       f"would delete {len(retention['would_remove'])} backup(s)")
        r.facts.update(dry_run=True, retention=retention)
        return _done(r, context, dag_id)
    v = verify_backup(get_engine(), backup.get("facts", {}).get("backup_id"), context)
    r = CheckResult("backup_verification")
    r.facts.update(v.as_dict())
    if not v.ok:
        r.escalate(Severity.P1, f"backup {v.backup_id} failed its restore check: {v.error or '; '.join(v.mismatches)}")
        r.items.extend(v.mismatches)
        _done(r, context, dag_id)
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(r.items[0])  # recorded and alerted; retrying cannot fix a bad file
    r.facts["retention"] = apply_retention(get_engine())
    r.summary = (f"backup {v.backup_id} restored in {v.restore_s} s and matches, table by table "
                 f"({len(v.tables_checked or [])} tables)")
    return _done(r, context, dag_id)


def run_dependency_check(context: dict) -> dict:
    from include.maintenance.dependencies import check

    out = check()
    r = CheckResult("dependency_check")
    d, a = out["drift"], out["advisories"]
    r.facts.update(locked=d["locked"], missing=d["missing"], version_drift=d["version_drift"],
                   not_in_lock=len(d["not_in_lock"]), advisories=a)
    if not d["ok"]:
        r.escalate(Severity.P2, f"{len(d['missing'])} locked package(s) missing, {len(d['version_drift'])} at "
                                f"another version than the lock")
        r.items.extend(d["missing"] + d["version_drift"])
    if not a["checked"]:
        r.items.append(a["reason"])
    elif a["vulnerable"]:
        r.escalate(Severity.P1, f"{len(a['vulnerable'])} locked package(s) with known vulnerabilities")
        r.items.extend(f"{k}: {', '.join(v)}" for k, v in a["vulnerable"].items())
    r.summary = ("installed packages match the lock" if d["ok"] else "drift from the lock") + \
        ("; advisories checked" if a["checked"] else "; advisories NOT checked (offline)")
    return _done(r, context, "weekly_maintenance")


# -- monthly --------------------------------------------------------------------------------------------------
def run_dr_drill(context: dict) -> dict:
    from include.maintenance.dr_drill import dr_drill

    return _done(dr_drill(get_engine(), context=context), context, "monthly_maintenance")


def run_compliance_review(context: dict) -> dict:
    from include.maintenance import compliance_review as compliance
    from include.core.storage import data_root

    start, end = compliance.month_bounds(business_date(context))
    r, rows = compliance.review(get_engine(), start, end)
    path = data_root() / "reports" / "compliance" / f"{start:%Y-%m}-violations.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(compliance.violations_csv(rows))
    r.facts["violations_csv"] = str(path)
    return _done(r, context, "monthly_maintenance")


def run_capacity_planning(context: dict) -> dict:
    from include.maintenance import capacity
    from include.reporting.daily_report import json_dump
    from include.core.storage import data_root

    out = capacity.plan(get_engine(), business_date(context))
    p = out["projection"]
    folder = data_root() / "reports" / "capacity"
    folder.mkdir(parents=True, exist_ok=True)
    month = business_date(context).strftime("%Y-%m")
    (folder / f"{month}.html").write_text(capacity.render_html(out))
    (folder / f"{month}.json").write_text(json_dump(out))
    r = CheckResult("capacity_planning")
    r.facts.update(projection=p, throughput_mps=out["throughput_mps"], numbers=out["numbers"],
                   chart=str(folder / f"{month}.html"))
    soon = [m for m in (p["months_until_window_full"], p["months_until_tier_full"]) if m is not None]
    if soon and min(soon) <= 3:
        r.escalate(Severity.P1, f"capacity runs out in {min(soon)} month(s): {p['numbers_needed_in_12_months']} "
                                f"numbers needed within 12 months (have {out['numbers']})")
    elif p["numbers_needed_now"] > out["numbers"]:
        r.escalate(Severity.P1, f"{p['numbers_needed_now']} numbers needed now for the 5-minute window, have "
                                f"{out['numbers']}")
    r.summary = (f"{p['current']:,} advisors, growth {p['slope_per_month']:+,.0f}/month; window full in "
                 f"{p['months_until_window_full']} months; numbers needed now {p['numbers_needed_now']}, "
                 f"in 12 months {p['numbers_needed_in_12_months']}")
    return _done(r, context, "monthly_maintenance")


def run_template_refresh(context: dict) -> dict:
    from include.maintenance.library_refresh import refresh_templates
    from include.whatsapp.client import WhatsAppHook

    with WhatsAppHook().get_conn() as client:
        return _done(refresh_templates(get_engine(), client), context, "monthly_maintenance")


def run_fallback_refresh(context: dict) -> dict:
    from include.maintenance.library_refresh import refresh_fallbacks

    return _done(refresh_fallbacks(get_engine()), context, "monthly_maintenance")


# -- summary ----------------------------------------------------------------------------------------------------
def publish_summary(title: str, reported: Mapping[str, dict | None], context: Mapping[str, Any]) -> dict[str, Any]:
    """One Slack summary of the steps the DAG wiring hands over; a step that did not report is a P1."""
    results = collect(reported, missing=Severity.P1)
    alert = summarise(title, business_date(context, TODAY), results, RunRef.from_context(context))
    return {"severity": alert.severity.value, "findings": len(alert.details)}
