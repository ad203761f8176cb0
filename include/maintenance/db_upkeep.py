"""Weekly database upkeep from real figures: VACUUM (ANALYZE) the hot tables that have dead tuples
(`pg_stat_user_tables`), REINDEX CONCURRENTLY the B-tree indexes whose leaf density shows bloat
(`pgstattuple.pgstatindex`), and report the slowest statements (`pg_stat_statements`).

The embedded server preloads pg_stat_statements; against a server without it (or without the right
to create the extensions) the report says so and the run does not fail.

Dry run: the same figures are read and the report lists what would be vacuumed and reindexed, but no
VACUUM, REINDEX or CREATE EXTENSION runs (a missing extension is reported as not measured).
"""
from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.core import config
from include.core.db import query

log = logging.getLogger(__name__)


def _autocommit(engine: Engine):
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _extension(conn, name: str, dry_run: bool = False) -> str | None:
    """Create the extension if possible; None when available, else the reason it is not.
    A dry run only looks: it never creates one."""
    if dry_run:
        installed = conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = :n"), {"n": name}).fetchone()
        return None if installed else "not installed, and a dry run does not create it"
    try:
        conn.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS {name}"))
        return None
    except sa.exc.DBAPIError as exc:
        return str(getattr(exc, "orig", exc)).strip().splitlines()[0]


def table_stats(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query("upkeep/table_stats"),
                                                      {"tables": list(config.HOT_TABLES)})]


def vacuum_hot_tables(engine: Engine, dead_ratio: float | None = None, dry_run: bool = False) -> dict:
    dead_ratio = config.VACUUM_DEAD_RATIO if dead_ratio is None else dead_ratio
    before = {r["table"]: r for r in table_stats(engine)}
    chosen = [t for t, r in before.items()
              if r["n_dead_tup"] > 0 and (r["n_dead_tup"] >= dead_ratio * max(1, r["n_live_tup"])
                                           or r["n_dead_tup"] >= 10_000 or r["last_analyze"] is None)]
    if not dry_run:
        with _autocommit(engine) as conn:
            for table in chosen:
                conn.execute(sa.text(f"VACUUM (ANALYZE) {table}"))  # names come from config, never from input
    return {"vacuumed": {} if dry_run else {t: {"dead_before": before[t]["n_dead_tup"], "live": before[t]["n_live_tup"]}
                                            for t in chosen},
            "would_vacuum": {t: {"dead": before[t]["n_dead_tup"], "live": before[t]["n_live_tup"]} for t in chosen}
            if dry_run else {},
            "checked": {t: {"dead": r["n_dead_tup"], "live": r["n_live_tup"]} for t, r in before.items()},
            "dry_run": dry_run}


def reindex_bloated(engine: Engine, max_density: float | None = None,
                    min_bytes: int = 1 << 20, dry_run: bool = False) -> dict:
    max_density = config.REINDEX_MAX_LEAF_DENSITY if max_density is None else max_density
    with _autocommit(engine) as conn:
        missing = _extension(conn, "pgstattuple", dry_run)
        if missing:
            return {"available": False, "reason": f"pgstattuple not available ({missing}): index bloat not measured",
                    "reindexed": [], "would_reindex": []}
        rows = conn.execute(query("upkeep/index_density"), {"tables": list(config.HOT_TABLES),
                                                             "min_bytes": min_bytes}).fetchall()
        bloated = [{"index": r.index_name, "leaf_density": round(r.avg_leaf_density, 1), "bytes": r.bytes}
                   for r in rows if r.avg_leaf_density is not None and r.avg_leaf_density < max_density]
        if not dry_run:
            for b in bloated:
                conn.execute(sa.text(f'REINDEX INDEX CONCURRENTLY "{b["index"]}"'))
    return {"available": True, "measured": [{"index": r.index_name, "leaf_density": r.avg_leaf_density,
                                             "bytes": r.bytes} for r in rows],
            "reindexed": [] if dry_run else bloated, "would_reindex": bloated if dry_run else [], "dry_run": dry_run}


def slow_queries(engine: Engine, limit: int = 10, dry_run: bool = False) -> dict:
    with _autocommit(engine) as conn:
        missing = _extension(conn, "pg_stat_statements", dry_run)
        if missing:
            return {"available": False,
                    "reason": f"pg_stat_statements not available ({missing}); add it to shared_preload_libraries"}
        try:
            rows = conn.execute(query("upkeep/slow_queries"), {"limit": limit}).fetchall()
        except sa.exc.DBAPIError as exc:  # created but not preloaded on this server
            return {"available": False, "reason": str(getattr(exc, "orig", exc)).strip().splitlines()[0]}
    return {"available": True, "top": [
        {"query": r.query[:300], "calls": r.calls, "mean_ms": round(r.mean_ms, 2), "total_ms": round(r.total_ms, 1),
         "rows": r.rows} for r in rows]}


def upkeep(engine: Engine, dry_run: bool = False) -> dict:
    out = {"vacuum": vacuum_hot_tables(engine, dry_run=dry_run), "reindex": reindex_bloated(engine, dry_run=dry_run),
           "slow_queries": slow_queries(engine, dry_run=dry_run), "dry_run": dry_run}
    if dry_run:
        log.info("database upkeep (dry run): would vacuum %s, would reindex %s, slow-query report %s",
                 list(out["vacuum"]["would_vacuum"]), [r["index"] for r in out["reindex"]["would_reindex"]],
                 out["slow_queries"].get("available"))
    else:
        log.info("database upkeep: vacuumed %s, reindexed %s, slow-query report %s", list(out["vacuum"]["vacuumed"]),
                 [r["index"] for r in out["reindex"]["reindexed"]], out["slow_queries"].get("available"))
    return out
