"""Storage cleanup and data retention (weekly).

* Render cache: objects under renders/ older than the retention period that nothing still needs
  (no plan row of the window, no pending delivery, no recent render row) are removed; bytes freed
  are reported. A render a pending delivery needs is never removed, however old.
* Rows: `webhook_events` and `deliveries` older than N days are archived to gzip JSON-lines files in
  object storage and deleted in the same transaction, chunk by chunk. The file of a chunk is named by
  its id range, so a crash between writing it and committing the delete leaves the rows in place, and
  the rerun rewrites the same file and then deletes them: nothing lost, nothing archived twice.
  Webhook events that are the evidence of a do-not-contact entry are kept.
* "Never twice" outlives retention: each archived delivery leaves its key (date, advisor, final status,
  wamid, archive file) in `sent_keys`, written in the transaction that deletes it. The fan-out's enqueue
  skips those keys, and `refuse_archived_date` (called by ops.authorise_backfill) refuses to deliver a
  date older than retention or one whose deliveries were archived, so a plan row of an archived date
  can never queue a second send.
* Dry run: every step reports what it would do (rows, id ranges, files, bytes) and changes nothing.
* Airflow's own metadata: `airflow db clean` for records older than N days, through the CLI.
"""
from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.core import config
from include.core.db import query

log = logging.getLogger(__name__)

ARCHIVABLE = {"webhook_events": "event_id", "deliveries": "delivery_id"}


def _mtime(path) -> dt.datetime | None:
    info = path.fs.info(path.path)
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            return dt.datetime.fromtimestamp(value, dt.UTC)
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return None


def clean_render_cache(engine: Engine, today: dt.date, retention_days: int | None = None,
                       dry_run: bool = False) -> dict:
    retention_days = config.RENDER_RETENTION_DAYS if retention_days is None else retention_days
    from include.core.storage import render_root

    with engine.connect() as conn:
        needed = {Path(r.storage_uri).name for r in conn.execute(query("retention/renders_in_use"), {
            "since": today - dt.timedelta(days=retention_days)})}
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=retention_days)
    root = render_root()
    scanned = removed = kept_needed = freed = 0
    if root.exists():
        for path in root.rglob("*.jpg"):
            scanned += 1
            mtime = _mtime(path)
            if mtime is None or mtime >= cutoff:
                continue
            if path.name in needed:
                kept_needed += 1
                continue
            size = path.stat().st_size
            if not dry_run:
                path.unlink()
            removed += 1
            freed += size
    out = {"scanned": scanned, "removed": removed, "bytes_freed": freed, "kept_old_but_needed": kept_needed,
           "retention_days": retention_days, "dry_run": dry_run}
    log.info("render cache cleanup: %s", out)
    return out


def archive_table(engine: Engine, table: str, cutoff: dt.date, chunk_rows: int | None = None,
                  fault: Callable[[str], None] | None = None) -> list[dict]:
    """Archive-then-delete one table's old rows, chunk by chunk, each chunk in one transaction.
    Archived deliveries leave their key in `sent_keys` in that same transaction.
    `fault` lets tests crash between writing the archive and deleting the rows."""
    chunk_rows = config.ARCHIVE_CHUNK_ROWS if chunk_rows is None else chunk_rows
    from include.core.storage import data_root

    if table not in ARCHIVABLE:
        raise ValueError(f"{table} is not archivable (only {', '.join(ARCHIVABLE)})")
    key = ARCHIVABLE[table]
    chunks = []
    while True:
        with engine.begin() as conn:
            rows = conn.execute(query(f"retention/old_{table}"), {"cutoff": cutoff, "limit": chunk_rows}).fetchall()
            if not rows:
                break
            ids = [getattr(r, key) for r in rows]
            body = "".join(json.dumps(dict(r._mapping), default=str, sort_keys=True) + "\n" for r in rows)
            data = gzip.compress(body.encode(), mtime=0)  # same rows, same bytes: a rerun rewrites the same file
            path = data_root() / "archive" / table / f"{table}-{ids[0]:012d}-{ids[-1]:012d}.jsonl.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            back = gzip.decompress(path.read_bytes()).decode().splitlines()
            if len(back) != len(rows):
                raise RuntimeError(f"archive {path} holds {len(back)} rows, expected {len(rows)}: not deleting")
            digest = hashlib.sha256(data).hexdigest()
            if fault:
                fault(str(path))
            conn.execute(query("retention/record_archive"), {"table_name": table, "first_id": ids[0],
                                                             "last_id": ids[-1], "rows": len(rows), "uri": str(path),
                                                             "sha256": digest})
            if table == "deliveries":  # the proof that these keys were used, before the rows go
                proved = conn.execute(query("retention/record_sent_keys"), {"ids": ids, "uri": str(path)}).rowcount
                if proved != len(ids):
                    raise RuntimeError(f"deliveries: kept {proved} of {len(ids)} sent keys; rolling back")
            deleted = conn.execute(sa.text(f"DELETE FROM {table} WHERE {key} = ANY(:ids)"), {"ids": ids}).rowcount
            if deleted != len(ids):
                raise RuntimeError(f"{table}: deleted {deleted} of {len(ids)} archived rows; rolling back")
            chunks.append({"table": table, "first_id": ids[0], "last_id": ids[-1], "rows": len(rows), "uri": str(path)})
    return chunks


def preview_table(engine: Engine, table: str, cutoff: dt.date, chunk_rows: int | None = None) -> dict:
    """What archive_table would do, without locking, writing or deleting anything (dry run)."""
    chunk_rows = config.ARCHIVE_CHUNK_ROWS if chunk_rows is None else chunk_rows
    if table not in ARCHIVABLE:
        raise ValueError(f"{table} is not archivable (only {', '.join(ARCHIVABLE)})")
    with engine.connect() as conn:
        r = conn.execute(query(f"retention/count_old_{table}"), {"cutoff": cutoff}).one()
    n = int(r.n)
    return {"would_archive_rows": n, "would_write_files": -(-n // chunk_rows) if n else 0,
            "first_id": r.first_id, "last_id": r.last_id,
            "oldest": str(r.oldest) if r.oldest else None, "newest": str(r.newest) if r.newest else None}


def archive_old_rows(engine: Engine, today: dt.date, retention_days: int | None = None,
                     fault: Callable[[str], None] | None = None, dry_run: bool = False) -> dict:
    retention_days = config.RETENTION_DAYS if retention_days is None else retention_days
    cutoff = today - dt.timedelta(days=retention_days)
    out: dict = {}
    for table in ARCHIVABLE:
        if dry_run:
            out[table] = {"archived_rows": 0, "files": [], **preview_table(engine, table, cutoff)}
            continue
        chunks = archive_table(engine, table, cutoff, fault=fault)
        out[table] = {"archived_rows": sum(c["rows"] for c in chunks), "files": [c["uri"] for c in chunks]}
    out["cutoff"] = cutoff.isoformat()
    out["dry_run"] = dry_run
    log.info("retention%s: %s", " (dry run)" if dry_run else "", out)
    return out


def refuse_archived_date(engine: Engine, business_date: dt.date, today: dt.date | None = None,
                         retention_days: int | None = None) -> None:
    """Raise ValueError if `business_date` must not be delivered because retention has (or may have)
    archived its deliveries: once they are gone, only `sent_keys` says who was already sent."""
    retention_days = config.RETENTION_DAYS if retention_days is None else retention_days
    from include.core.dates import ist_today

    today = today or ist_today()
    cutoff = today - dt.timedelta(days=retention_days)
    with engine.connect() as conn:
        r = conn.execute(query("retention/archived_date"), {"business_date": business_date}).one()
    if r.archived:
        raise ValueError(
            f"business date {business_date} is archived: retention moved its {r.archived} deliveries to the archive "
            f"on {r.first_archived_at:%Y-%m-%d}; delivering it again would resend to advisors who already got it")
    if business_date < cutoff:
        raise ValueError(
            f"business date {business_date} is older than the {retention_days}-day retention (cutoff {cutoff}): its "
            f"deliveries are archived and deleted, so who was already sent can no longer be checked; "
            f"refusing to deliver it")


def clean_airflow_metadata(retention_days: int | None = None, dry_run: bool = False) -> dict:
    """`airflow db clean` through the CLI (the supported way to trim Airflow's own tables)."""
    retention_days = config.AIRFLOW_METADATA_RETENTION_DAYS if retention_days is None else retention_days
    before = (dt.datetime.now(dt.UTC) - dt.timedelta(days=retention_days)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    cmd = [str(Path(sys.executable).with_name("airflow")), "db", "clean", "--clean-before-timestamp", before,
           "--yes", "--skip-archive"]
    if dry_run:
        cmd.append("--dry-run")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(f"airflow db clean failed ({res.returncode}): {(res.stderr or res.stdout)[-800:]}")
    return {"clean_before": before, "dry_run": dry_run, "output_tail": (res.stdout + res.stderr)[-1500:]}
