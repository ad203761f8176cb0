"""Pre-render plus render QC throughput, as the nightly window runs it: the mapped render batches,
two at a time (one per core, as the LocalExecutor runs them), each rendering with Pillow, writing
through ObjectStoragePath and QC-ing every image; then a rerun with nothing changed.

Targets: >= 28 packs/s (100k renders inside the 60-minute window on this 2-core machine), a rerun
>= 50x faster, and peak RSS of a render task flat with N (compared across --sizes).

    .venv/bin/python -m bench.render [--sizes 2000 10000] [--workers 2]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from bench.common import write_result
from bench.support import app_database
from devtools import demo_world
from include.content import nightly_window as nightly

DAY = dt.date(2026, 11, 23)


def _batch(url: str, day: str, batch: int, count: int) -> dict:
    from include.core.db import get_engine

    return nightly.render_batch(get_engine(url), dt.date.fromisoformat(day), batch, count, "approved")


def _round(pool: ProcessPoolExecutor, url: str, batches: list[dict]) -> tuple[float, list[dict]]:
    t = time.perf_counter()
    results = list(pool.map(_batch, [url] * len(batches), [b["business_date"] for b in batches],
                            [b["batch"] for b in batches], [b["batch_count"] for b in batches]))
    return time.perf_counter() - t, results


def measure(n: int, workers: int) -> dict:
    data_dir = tempfile.mkdtemp(prefix="fa-bench-render-")
    os.environ["FA_DATA_DIR"] = data_dir
    try:
        with app_database() as (_pg, engine, url):
            demo_world.seed_world(engine, advisors=n, today=DAY)
            batches = nightly.render_batches(engine, DAY)
            # A fresh process per task, like Airflow's task runner; spawn so nothing is inherited.
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                     max_tasks_per_child=1) as pool:
                first_s, first = _round(pool, url, batches)
                rerun_s, rerun = _round(pool, url, batches)
            nightly.assign_fallbacks(engine, DAY)
            summary = nightly.render_summary(engine, DAY)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    rendered = sum(r["rendered"] for r in first)
    render_only = [r["elapsed_s"] for r in first]
    return {
        "advisors": n, "batches": len(batches), "workers": workers,
        "rendered": rendered, "qc_passed": summary["passed"], "qc_failed": summary["failed"],
        "bytes_written": sum(r["bytes_written"] for r in first),
        "first_run_s": round(first_s, 2), "packs_per_s": round(rendered / first_s, 1),
        "packs_per_s_per_task": round(rendered / sum(render_only), 1),
        "rerun_s": round(rerun_s, 2), "rerun_rendered": sum(r["rendered"] for r in rerun),
        "rerun_speedup": round(first_s / rerun_s, 1) if rerun_s else None,
        "peak_rss_mb_per_task": max(r["peak_rss_mb"] for r in first),
        "projected_100k_minutes": round(100_000 / (rendered / first_s) / 60, 1),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000])
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    runs = []
    for n in args.sizes:
        runs.append(measure(n, args.workers))
        print(runs[-1])
    big = runs[-1]
    rss = [r["peak_rss_mb_per_task"] for r in runs]
    figures = {
        "runs": runs,
        "targets": {"packs_per_s": 28, "rerun_speedup": 50, "rss_growth_ratio_max": 1.25},
        "meets": {
            "packs_per_s": big["packs_per_s"] >= 28,
            "rerun_speedup": (big["rerun_speedup"] or 0) >= 50,
            "rss_flat": max(rss) / min(rss) <= 1.25,
        },
        "rss_growth_ratio": round(max(rss) / min(rss), 3),
    }
    write_result("render", figures)
    return figures


if __name__ == "__main__":
    main()
