"""Weekly database upkeep from real figures: VACUUM (ANALYZE) the hot tables that have dead tuples
(`pg_stat_user_tables`), REINDEX CONCURRENTLY the B-tree indexes whose leaf density shows bloat
(`pgstattuple.pgstatindex`), and report the slowest statements (`pg_stat_statements`).

The embedded server preloads pg_stat_statements; against a server without it (or without the right
to create the extensions) the report says so and the run does not fail.
"""
from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include import config
from include.db import query

log = logging.getLogger(__name__)


def _autocommit(engine: Engine):
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _extension(conn, name: str) -> str | None:
    """Create the extension if possible; None when available, else the reason it is not."""
    try:
        conn.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS {name}"))
        return None
    except sa.exc.DBAPIError as exc:
        return str(getattr(exc, "orig", exc)).strip().splitlines()[0]


def table_stats(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query("upkeep/table_stats"),
                                                      {"tables": list(config.HOT_TABLES)})]


def vacuum_hot_tables(engine: Engine, dead_ratio: float = config.VACUUM_DEAD_RATIO) -> dict:
    before = {r["table"]: r for r in table_stats(engine)}
    chosen = [t for t, r in before.items()
              if r["n_dead_tup"] > 0 and (r["n_dead_tup"] >= dead_ratio * max(1, r["n_live_tup"])
                                           or r["n_dead_tup"] >= 10_000 or r["last_analyze"] is None)]
    with _autocommit(engine) as conn:
        for table in chosen:
            conn.execute(sa.text(f"VACUUM (ANALYZE) {table}"))  # names come from config, never from input
    return {"vacuumed": {t: {"dead_before": before[t]["n_dead_tup"], "live": before[t]["n_live_tup"]}
                         for t in chosen},
            "checked": {t: {"dead": r["n_dead_tup"], "live": r["n_live_tup"]} for t, r in before.items()}}


def reindex_bloated(engine: Engine, max_density: float = config.REINDEX_MAX_LEAF_DENSITY,
                    min_bytes: int = 1 << 20) -> dict:
    with _autocommit(engine) as conn:
        missing = _extension(conn, "pgstattuple")
        if missing:
            return {"available": False, "reason": f"pgstattuple not available ({missing}): index bloat not measured"}
        rows = conn.execute(query("upkeep/index_density"), {"tables": list(config.HOT_TABLES),
                                                             "min_bytes": min_bytes}).fetchall()
        reindexed = []
        for r in rows:
            if r.avg_leaf_density is not None and r.avg_leaf_density < max_density:
                conn.execute(sa.text(f'REINDEX INDEX CONCURRENTLY "{r.index_name}"'))
                reindexed.append({"index": r.index_name, "leaf_density": round(r.avg_leaf_density, 1),
                                  "bytes": r.bytes})
    return {"available": True, "measured": [{"index": r.index_name, "leaf_density": r.avg_leaf_density,
                                             "bytes": r.bytes} for r in rows], "reindexed": reindexed}


def slow_queries(engine: Engine, limit: int = 10) -> dict:
    with _autocommit(engine) as conn:
        missing = _extension(conn, "pg_stat_statements")
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


def upkeep(engine: Engine) -> dict:
    out = {"vacuum": vacuum_hot_tables(engine), "reindex": reindex_bloated(engine),
           "slow_queries": slow_queries(engine)}
    log.info("database upkeep: vacuumed %s, reindexed %s, slow-query report %s", list(out["vacuum"]["vacuumed"]),
             [r["index"] for r in out["reindex"].get("reindexed", [])], out["slow_queries"].get("available"))
    return out
