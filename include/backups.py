"""Backups of the application database, verified by restoring them, and the restores DR drills use.

A backup is `pg_dump -Fc` run inside an exported snapshot: the row counts and checksums of the key
tables are measured in that same snapshot and stored with the backup (`backups`), so a restore can
be compared exactly, not approximately. Files go through ObjectStoragePath to backups/<kind>/ with a
sha256 sidecar. Verification downloads the file, checks the sha256, restores into a scratch database
and compares every key table; a backup that cannot be restored is a P1. Retention keeps the newest
7 daily and 4 weekly backups.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include import config
from include.db import query

log = logging.getLogger(__name__)

# Tables whose content a restore must reproduce exactly, with the key that orders the checksum.
KEY_TABLES = {
    "advisors": "advisor_id", "do_not_contact": "phone_e164", "content_packs": "pack_id",
    "sending_numbers": "phone_number_id", "whatsapp_templates": "template_id",
    "pack_assignments": "business_date, advisor_id", "delivery_plan": "business_date, advisor_id",
    "deliveries": "delivery_id", "audit_log": "audit_id", "renders": "render_id",
}
# Where the newest data lives (for the RPO: how old is the newest row a restore brings back).
NEWEST_DATA = ("SELECT greatest((SELECT max(updated_at) FROM deliveries),"
               " (SELECT max(received_at) FROM webhook_events),"
               " (SELECT max(at) FROM audit_log), (SELECT max(updated_at) FROM advisors))")


class BackupError(RuntimeError):
    pass


def pg_tool(name: str) -> str:
    """pg_dump / pg_restore: FA_PG_BIN_DIR, else the embedded PostgreSQL wheel's, else PATH."""
    if config.PG_BIN_DIR:
        return str(Path(config.PG_BIN_DIR) / name)
    try:
        from include.devstack.pg import pg_bin

        path = pg_bin(name)
        if Path(path).exists():
            return path
    except ImportError:
        pass
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} not found: set FA_PG_BIN_DIR")
    return found


def libpq_env(url: sa.URL) -> dict[str, str]:
    """libpq settings for a SQLAlchemy URL (the password goes in the environment, not the command line)."""
    env = dict(os.environ)
    host = url.query.get("host") or url.host
    for key, value in (("PGHOST", host), ("PGPORT", url.port), ("PGUSER", url.username),
                       ("PGPASSWORD", url.password), ("PGDATABASE", url.database)):
        if value:
            env[key] = str(value)
    return env


def measure(conn: sa.Connection) -> tuple[dict[str, int], dict[str, str], dt.datetime | None]:
    counts, checksums = {}, {}
    for table, key in KEY_TABLES.items():
        row = conn.execute(sa.text(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {key}), '')) "
                                   f"FROM {table} t")).one()
        counts[table], checksums[table] = int(row[0]), row[1]
    newest = conn.execute(sa.text(NEWEST_DATA)).scalar()
    return counts, checksums, newest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def backup_root():
    from include.storage import data_root

    return data_root() / "backups"


def take_backup(engine: Engine, kind: str = "weekly") -> dict:
    if kind not in ("daily", "weekly", "manual"):
        raise ValueError(f"backup kind must be daily, weekly or manual, got {kind!r}")
    started = time.monotonic()
    stamp = dt.datetime.now(dt.UTC)
    tmp = Path(tempfile.mkdtemp(prefix="fa-backup-"))
    local = tmp / "app.dump"
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
            snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            counts, checksums, newest = measure(conn)
            res = subprocess.run([pg_tool("pg_dump"), "-Fc", "--no-owner", f"--snapshot={snapshot}", "-f", str(local)],
                                 env=libpq_env(engine.url), capture_output=True, text=True)
            if res.returncode != 0:
                raise BackupError(f"pg_dump failed ({res.returncode}): {res.stderr.strip()[-800:]}")
        digest = _sha256(local)
        target = backup_root() / kind / f"app-{stamp:%Y%m%dT%H%M%SZ}.dump"
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(local, "rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        (target.parent / f"{target.name}.sha256").write_text(f"{digest}  {target.name}\n")
        size = local.stat().st_size
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with engine.begin() as conn:
        backup_id = conn.execute(query("backups/insert"), {
            "kind": kind, "uri": str(target), "sha256": digest, "bytes": size, "snapshot_at": stamp,
            "newest_data_at": newest, "table_counts": json.dumps(counts),
            "table_checksums": json.dumps(checksums)}).scalar_one()
    out = {"backup_id": backup_id, "uri": str(target), "sha256": digest, "bytes": size, "kind": kind,
           "rows": sum(counts.values()), "seconds": round(time.monotonic() - started, 2)}
    log.info("backup taken: %s", out)
    return out


@contextmanager
def scratch_database(engine: Engine, prefix: str):
    """A fresh empty database on the same server, dropped afterwards whatever happens."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        scratch = sa.create_engine(engine.url.set(database=name), poolclass=sa.NullPool)
        try:
            yield scratch
        finally:
            scratch.dispose()
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _fetch(uri: str, into: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    src = ObjectStoragePath(uri)
    if not src.exists():
        raise BackupError(f"backup file {uri} is missing")
    with src.open("rb") as s, open(into, "wb") as d:
        shutil.copyfileobj(s, d, 1 << 20)


def restore(backup: sa.Row, target: Engine) -> float:
    """Download, check the sha256 and pg_restore into `target`; returns the seconds it took."""
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="fa-restore-"))
    try:
        local = tmp / "app.dump"
        _fetch(backup.uri, local)
        digest = _sha256(local)
        if digest != backup.sha256:
            raise BackupError(f"backup {backup.backup_id} is corrupted: sha256 {digest[:12]}… does not match the "
                              f"recorded {backup.sha256[:12]}…")
        res = subprocess.run([pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "-d", target.url.database,
                              str(local)], env=libpq_env(target.url), capture_output=True, text=True)
        if res.returncode != 0:
            raise BackupError(f"pg_restore of backup {backup.backup_id} failed: {res.stderr.strip()[-800:]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return time.monotonic() - started


def latest(engine: Engine, backup_id: int | None = None):
    with engine.connect() as conn:
        row = conn.execute(query("backups/latest"), {"backup_id": backup_id}).fetchone()
    if row is None:
        raise BackupError("no backup to verify or restore" + (f" with id {backup_id}" if backup_id else ""))
    return row


@dataclass
class Verification:
    backup_id: int
    ok: bool
    restore_s: float
    mismatches: list[str]
    error: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def verify_backup(engine: Engine, backup_id: int | None = None, context: dict | None = None) -> Verification:
    """Restore into a scratch database and compare every key table with what the backup recorded."""
    from include.alerting import Alert, RunRef, Severity, post

    backup = latest(engine, backup_id)
    mismatches: list[str] = []
    error = None
    seconds = 0.0
    try:
        with scratch_database(engine, "restore_check") as scratch:
            seconds = restore(backup, scratch)
            with scratch.connect() as conn:
                counts, checksums, _ = measure(conn)
        for table in KEY_TABLES:
            want_n, got_n = backup.table_counts.get(table), counts.get(table)
            if want_n != got_n:
                mismatches.append(f"{table}: {got_n} rows restored, {want_n} expected")
            elif backup.table_checksums.get(table) != checksums.get(table):
                mismatches.append(f"{table}: checksum differs")
    except (BackupError, sa.exc.SQLAlchemyError, OSError) as exc:
        error = str(exc)
    result = Verification(backup.backup_id, not mismatches and error is None, round(seconds, 2), mismatches, error)
    with engine.begin() as conn:
        conn.execute(query("backups/record_verification"), {"backup_id": backup.backup_id, "ok": result.ok,
                                                            "detail": json.dumps(result.as_dict())})
    if not result.ok:
        post(Alert(Severity.P1, f"Backup {backup.backup_id} cannot be restored as recorded",
                   {"file": backup.uri, "error": error or "restored with differences"},
                   RunRef.from_context(context), mismatches))
    log.info("backup verification: %s", result.as_dict())
    return result


def apply_retention(engine: Engine, keep_daily: int = config.BACKUP_KEEP_DAILY,
                    keep_weekly: int = config.BACKUP_KEEP_WEEKLY) -> dict:
    """Delete backups beyond the newest `keep_daily` daily and `keep_weekly` weekly ones (file, then row)."""
    from airflow.sdk import ObjectStoragePath

    removed = []
    with engine.begin() as conn:
        doomed = conn.execute(query("backups/beyond_retention"), {"keep_daily": keep_daily,
                                                                  "keep_weekly": keep_weekly}).fetchall()
        for b in doomed:
            for uri in (b.uri, f"{b.uri}.sha256"):
                path = ObjectStoragePath(uri)
                if path.exists():
                    path.unlink()
            conn.execute(query("backups/mark_deleted"), {"backup_id": b.backup_id})
            removed.append(b.uri)
    return {"removed": removed, "kept_daily": keep_daily, "kept_weekly": keep_weekly}
