"""Benchmark fixtures: a throwaway embedded PostgreSQL with a migrated app database, and the sandbox."""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from include.core import db
from devtools.devstack.pg import EmbeddedPostgres


@contextmanager
def app_database(name: str = "bench"):
    tmp = Path(tempfile.mkdtemp(prefix="fa-bench-"))
    pg = EmbeddedPostgres(tmp / "pg", durable=False).start()
    try:
        pg.create_database(name)
        engine = db.get_engine(pg.url(name))
        db.migrate(engine)
        yield pg, engine, pg.url(name)
    finally:
        db.dispose_engines()
        pg.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
