"""Owns access to the application database.

The database is reached through the Airflow connection `app_db` (SQLAlchemy 2, psycopg 3 driver);
callers that already know a URL (tests, benchmarks, the local stack) pass it explicitly.
SQL lives in files under sql/ and is referred to by name: `query("advisors/eligible_count")` loads
sql/queries/advisors/eligible_count.sql. Migrations are the numbered files in sql/migrations.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from include.core.config import APP_DB_CONN_ID, PROJECT_ROOT

log = logging.getLogger(__name__)

SQL_DIR = PROJECT_ROOT / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
QUERIES_DIR = SQL_DIR / "queries"
_MIGRATION_LOCK_KEY = 7_204_611  # pg_advisory_xact_lock key: one migrator at a time


# -- engines ---------------------------------------------------------------------------------
def url_from_airflow_connection(conn_id: str = APP_DB_CONN_ID) -> URL:
    """Build a SQLAlchemy URL from an Airflow connection (env var, secrets backend or API)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    host = conn.host or None
    query = {}
    if host and host.startswith("/"):  # Unix-socket directory (embedded PostgreSQL)
        query["host"] = host
        host = None
    extra = conn.extra_dejson if conn.extra else {}
    for key in ("sslmode", "application_name", "connect_timeout"):
        if key in extra:
            query[key] = str(extra[key])
    return URL.create("postgresql+psycopg", username=conn.login or None, password=conn.password or None,
                      host=host, port=conn.port or None, database=conn.schema or None, query=query)


def normalise_url(url: str | URL) -> URL:
    """Accept postgres://, postgresql:// or postgresql+driver:// and pin the psycopg 3 driver."""
    u = sa.make_url(url) if isinstance(url, str) else url
    if u.drivername in ("postgres", "postgresql", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+psycopg")
    if not u.drivername.startswith("postgresql"):
        raise ValueError(f"app database must be PostgreSQL, got driver {u.drivername!r}")
    return u


_engines: dict[str, Engine] = {}


def get_engine(url: str | URL | None = None, conn_id: str = APP_DB_CONN_ID) -> Engine:
    """The pooled engine for `url`, or for the Airflow connection `conn_id` when no URL is given."""
    resolved = normalise_url(url) if url is not None else url_from_airflow_connection(conn_id)
    _forget_inherited_engines()
    key = resolved.render_as_string(hide_password=False)
    engine = _engines.get(key)
    if engine is None:
        engine = sa.create_engine(resolved, pool_size=5, max_overflow=10, pool_pre_ping=True,
                                  pool_recycle=1800, connect_args={"connect_timeout": 10})
        _engines[key] = engine
    return engine


_engines_pid = os.getpid()


def _forget_inherited_engines() -> None:
    """After a fork (LocalExecutor, process pools) never reuse the parent's pooled sockets."""
    global _engines_pid
    if os.getpid() != _engines_pid:
        for engine in _engines.values():
            engine.dispose(close=False)
        _engines.clear()
        _engines_pid = os.getpid()


def dispose_engines() -> None:
    """Close every pooled connection (after fork, and in tests that drop databases)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


# -- named SQL ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def sql_text(name: str) -> str:
    path = (QUERIES_DIR / f"{name}.sql").resolve()
    if QUERIES_DIR.resolve() not in path.parents:
        raise ValueError(f"query name escapes sql/queries: {name!r}")
    if not path.exists():
        raise FileNotFoundError(f"no named query {name!r} (expected {path})")
    return path.read_text()


def query(name: str) -> sa.TextClause:
    """The named SQL statement sql/queries/<name>.sql as a bindable text clause."""
    return sa.text(sql_text(name))


# -- migrations -------------------------------------------------------------------------------
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class MigrationError(RuntimeError):
    pass


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _MIGRATION_FILE.match(path.name)
        if not m:
            raise MigrationError(f"migration file {path.name!r} does not match NNNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}: {versions}")
    return found


def migrate(engine: Engine, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; return the applied names.

    Already-applied migrations are skipped, so running twice is a no-op. A migration whose file
    changed after it was applied is an error: the database and the repository disagree.
    """
    applied_now: list[str] = []
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"))
    for mig in discover_migrations(directory):
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            row = conn.execute(sa.text("SELECT checksum FROM schema_migrations WHERE version = :v"),
                               {"v": mig.version}).fetchone()
            if row is not None:
                if row[0] != mig.checksum:
                    raise MigrationError(
                        f"migration {mig.version:04d}_{mig.name} was changed after it was applied "
                        f"(db checksum {row[0][:12]}, file {mig.checksum[:12]}); add a new migration instead")
                continue
            try:
                # Straight to the driver with no parameters: a '%' in a migration (LIKE '%x', a comment) is SQL,
                # not a placeholder (exec_driver_sql hands psycopg an empty parameter set, which parses them).
                with conn.connection.dbapi_connection.cursor() as cur:
                    cur.execute(mig.sql)
            except Exception as exc:
                raise MigrationError(
                    f"migration {mig.version:04d}_{mig.name} failed and was rolled back: {exc}") from exc
            conn.execute(sa.text("INSERT INTO schema_migrations (version, name, checksum) VALUES (:v, :n, :c)"),
                         {"v": mig.version, "n": mig.name, "c": mig.checksum})
            applied_now.append(f"{mig.version:04d}_{mig.name}")
            log.info("applied migration %04d_%s", mig.version, mig.name)
    return applied_now
