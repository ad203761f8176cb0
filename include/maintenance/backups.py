"""Backups of the application database, verified by restoring them, and the restores DR drills use.

A backup is `pg_dump -Fc` run inside an exported snapshot. In that same snapshot the list of every
table of the app schema is read from the catalog (not a hard-coded list: a table added by a later
migration is covered the day it exists), and each table's row count and checksum are measured; the
list, counts and checksums are stored with the backup (`backups.tables`, `table_counts`,
`table_checksums`), so a restore can be compared exactly, not approximately. Files go through
ObjectStoragePath to backups/<kind>/ with a sha256 sidecar. Verification downloads the file, checks the
sha256, restores into a scratch database and compares every recorded table (a table missing from the
restore, or one the backup did not record, is a mismatch); a backup that cannot be restored is a P1.
Only a backup that passed this check may be restored by the DR drill. Retention keeps the newest 7 daily
and 4 weekly backups.

The checksum of a table is the sum, over its rows, of the row's md5 (as two 64-bit halves): it does not
depend on row order and needs no memory beyond one row, however large the table.
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

from include.core import config
from include.core.db import query

log = logging.getLogger(__name__)

# Row checksum of backups taken since migration 0009 (recorded in backups.checksum_method).
CHECKSUM_METHOD = "row-md5-sum/1"
# Before 0009 a backup recorded only these tables, with an ordered string_agg md5 (checksum_method NULL);
# kept so such a backup can still be verified as it was recorded.
LEGACY_KEY_TABLES = {
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
    """pg_dump / pg_restore: FA_PG_BIN_DIR, else PATH (the dev stack and the tests point FA_PG_BIN_DIR at the
    embedded PostgreSQL's binaries, so the server and its client tools always match)."""
    if config.PG_BIN_DIR:
        return str(Path(config.PG_BIN_DIR) / name)
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


def app_tables(conn: sa.Connection) -> list[str]:
    """Every table of the app schema, from the catalog (in the connection's snapshot)."""
    return [r.table_name for r in conn.execute(query("backups/app_tables"))]


def _checksum_sql(conn: sa.Connection, table: str, method: str | None) -> str:
    name = conn.dialect.identifier_preparer.quote(table)
    if method == CHECKSUM_METHOD:
        return ("SELECT count(*), coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0)::text || '/' || "
                "coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0)::text "
                f"FROM (SELECT md5(fa_row::text) AS h FROM {name} AS fa_row) s")
    if method is None and table in LEGACY_KEY_TABLES:
        return (f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {LEGACY_KEY_TABLES[table]}), '')) "
                f"FROM {name} t")
    raise BackupError(f"no checksum method {method!r} for table {table}")


def measure(conn: sa.Connection, tables: list[str] | None = None, method: str | None = CHECKSUM_METHOD
            ) -> tuple[list[str], dict[str, int], dict[str, str], dt.datetime | None]:
    """The tables (default: every table of the app schema), their row counts and checksums, and the
    newest data's time."""
    tables = app_tables(conn) if tables is None else list(tables)
    counts, checksums = {}, {}
    for table in tables:
        row = conn.execute(sa.text(_checksum_sql(conn, table, method))).one()
        counts[table], checksums[table] = int(row[0]), row[1]
    newest = conn.execute(sa.text(NEWEST_DATA)).scalar()
    return tables, counts, checksums, newest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def backup_root():
    from include.core.storage import data_root

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
            tables, counts, checksums, newest = measure(conn)  # every app table, in the dump's snapshot
            res = subprocess.run([pg_tool("pg_dump"), "-Fc", "--no-owner", f"--snapshot={snapshot}", "-f", str(local)],
                                 env=libpq_env(engine.url), capture_output=True, text=True)
            if res.returncode != 0:
                raise BackupError(f"pg_dump failed ({res.returncode}): {res.stderr.strip()[-800:]}")
        digest = _sha256(local)
        # Microseconds in the name: two backups in the same second must not overwrite each other's file.
        target = backup_root() / kind / f"app-{stamp:%Y%m%dT%H%M%S.%fZ}.dump"
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise BackupError(f"{target} already exists: not overwriting another backup")
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
            "table_checksums": json.dumps(checksums), "tables": tables,
            "checksum_method": CHECKSUM_METHOD}).scalar_one()
    out = {"backup_id": backup_id, "uri": str(target), "sha256": digest, "bytes": size, "kind": kind,
           "tables": len(tables), "rows": sum(counts.values()), "seconds": round(time.monotonic() - started, 2)}
    log.info("backup taken: %s", out)
    return out


def preview_backup(engine: Engine, kind: str = "weekly") -> dict:
    """What take_backup would do, without dumping or writing anything (dry run): the tables it would
    dump and verify (from the catalog), their estimated rows and the database's size."""
    with engine.connect() as conn:
        tables = app_tables(conn)
        estimates = conn.execute(query("backups/table_estimates"), {"tables": tables}).fetchall()
        db_bytes = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
    return {"dry_run": True, "backup_id": None, "kind": kind, "would_dump_tables": tables,
            "estimated_rows": {r.table_name: r.estimated_rows for r in estimates}, "database_bytes": db_bytes,
            "would_write": str(backup_root() / kind / "app-<UTC>.dump")}


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


def latest_verified(engine: Engine, backup_id: int | None = None):
    """The newest kept backup whose restore verification passed (or `backup_id`, if it passed); None if
    there is none."""
    with engine.connect() as conn:
        return conn.execute(query("backups/latest_verified"), {"backup_id": backup_id}).fetchone()


def recent(engine: Engine, limit: int = 5) -> list:
    with engine.connect() as conn:
        return conn.execute(query("backups/recent"), {"limit": limit}).fetchall()


@dataclass
class Verification:
    backup_id: int
    ok: bool
    restore_s: float
    mismatches: list[str]
    error: str | None = None
    tables_checked: list[str] | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def verify_backup(engine: Engine, backup_id: int | None = None, context: dict | None = None) -> Verification:
    """Restore into a scratch database and compare every table the backup recorded with what it recorded."""
    from include.core.alerting import Alert, RunRef, Severity, post

    backup = latest(engine, backup_id)
    # Since 0009 the backup lists every app table it measured; before, the 10 key tables (legacy checksum).
    recorded = list(backup.tables) if backup.tables is not None else sorted(backup.table_counts)
    mismatches: list[str] = []
    error = None
    seconds = 0.0
    try:
        with scratch_database(engine, "restore_check") as scratch:
            seconds = restore(backup, scratch)
            with scratch.connect() as conn:
                present = set(app_tables(conn))
                _, counts, checksums, _ = measure(conn, [t for t in recorded if t in present], backup.checksum_method)
        mismatches += [f"{t}: recorded in the backup but missing from the restore" for t in recorded
                       if t not in present]
        if backup.tables is not None:
            mismatches += [f"{t}: in the restore but not recorded by the backup"
                           for t in sorted(present - set(recorded))]
        for table in recorded:
            if table not in present:
                continue
            want_n, got_n = backup.table_counts.get(table), counts.get(table)
            if want_n != got_n:
                mismatches.append(f"{table}: {got_n} rows restored, {want_n} expected")
            elif backup.table_checksums.get(table) != checksums.get(table):
                mismatches.append(f"{table}: checksum differs")
    except (BackupError, sa.exc.SQLAlchemyError, OSError) as exc:
        error = str(exc)
    result = Verification(backup.backup_id, not mismatches and error is None, round(seconds, 2), mismatches, error,
                          recorded)
    with engine.begin() as conn:
        conn.execute(query("backups/record_verification"), {"backup_id": backup.backup_id, "ok": result.ok,
                                                            "detail": json.dumps(result.as_dict())})
    if not result.ok:
        post(Alert(Severity.P1, f"Backup {backup.backup_id} cannot be restored as recorded",
                   {"file": backup.uri, "error": error or "restored with differences"},
                   RunRef.from_context(context), mismatches))
    log.info("backup verification: %s", result.as_dict())
    return result


def apply_retention(engine: Engine, keep_daily: int | None = None,
                    keep_weekly: int | None = None, dry_run: bool = False) -> dict:
    """Delete backups beyond the newest `keep_daily` daily and `keep_weekly` weekly ones (file, then row).
    A dry run lists them and deletes nothing."""
    keep_daily = config.BACKUP_KEEP_DAILY if keep_daily is None else keep_daily
    keep_weekly = config.BACKUP_KEEP_WEEKLY if keep_weekly is None else keep_weekly
    from airflow.sdk import ObjectStoragePath

    removed = []
    with engine.begin() as conn:
        doomed = conn.execute(query("backups/beyond_retention"), {"keep_daily": keep_daily,
                                                                  "keep_weekly": keep_weekly}).fetchall()
        for b in doomed:
            removed.append(b.uri)
            if dry_run:
                continue
            for uri in (b.uri, f"{b.uri}.sha256"):
                path = ObjectStoragePath(uri)
                if path.exists():
                    path.unlink()
            conn.execute(query("backups/mark_deleted"), {"backup_id": b.backup_id})
    key = "would_remove" if dry_run else "removed"
    return {key: removed, "kept_daily": keep_daily, "kept_weekly": keep_weekly, "dry_run": dry_run}
