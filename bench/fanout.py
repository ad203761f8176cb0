"""Delivery fan-out at scale against the sandbox, the way the LocalExecutor runs it: each mapped
`send_shard` unit in its own process, at most PARALLELISM at a time, forked from a warm parent that
has Airflow imported (as the executor's supervisor forks task processes); each task process still
imports the sender's own modules inside the measured wall time.

Setups: 5 numbers x 80 msg/s (ceiling 400/s) and 1 number x 1,000 msg/s (ceiling 1,000/s), for
N = 1k, 10k, 100k advisors. Beside it, a naive baseline: one synchronous request at a time per shard.

    .venv/bin/python -m bench.fanout [--sizes 1000,10000,100000] [--latency-ms 30] [--naive-seconds 20]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import datetime as dt
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.common import CpuMeter, write_result
from bench.support import app_database
from tests.support import TEST_TOKEN, SandboxProcess

DAY = dt.date(2026, 11, 23)
TEMPLATES = {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"}
PARALLELISM = int(os.environ.get("BENCH_PARALLELISM", "6"))  # the LocalExecutor's slots (devstack/env.py)


def _send(args):
    db_url, sandbox_url, unit = args
    from include.core.db import get_engine
    from include.delivery.fanout import SenderOptions, send_unit
    from include.whatsapp.client import WhatsAppSettings

    settings = WhatsAppSettings(base_url=sandbox_url, access_token=TEST_TOKEN, waba_id="200000000000001")
    profile_dir = os.environ.get("BENCH_PROFILE")  # a cProfile dump per unit, to see where a sender's CPU goes
    if profile_dir:
        import cProfile

        prof = cProfile.Profile(time.thread_time)  # CPU of the event-loop thread, not wall time
        prof.enable()
    cpu0 = time.process_time()
    result = send_unit(get_engine(db_url), settings, unit, SenderOptions(jitter_honoured=False))
    if profile_dir:
        prof.disable()
        prof.dump_stats(os.path.join(profile_dir, f"sender-{unit['shard']}-{unit['segment']}.prof"))
    result["cpu_s"] = time.process_time() - cpu0
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def _executor_context():
    """Task processes as Airflow 3's LocalExecutor makes them: forked from a long-lived supervisor with
    Airflow, SQLAlchemy and httpx already imported (started here before any timing), not fresh
    interpreters. aiohttp and include.* are imported by each task process, inside the wall time."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["airflow.sdk", "sqlalchemy", "httpx", "psutil", "bench.common", "bench.support",
                                "tests.support"])
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return ctx


def _configure_numbers(engine, sandbox, setup: str) -> int:
    """Return the throughput ceiling (sum of the active primaries' msg/s)."""
    with engine.begin() as c:
        if setup == "5x80":
            c.execute(sa.text("UPDATE sending_numbers SET role = 'primary', shard = 4 "
                              "WHERE phone_number_id = '100000000000005'"))
            return 5 * 80
        c.execute(sa.text("UPDATE sending_numbers SET active = false WHERE phone_number_id <> '100000000000001'"))
        c.execute(sa.text("UPDATE sending_numbers SET throughput_mps = 1000 WHERE phone_number_id = '100000000000001'"))
    sandbox.admin.post("/_sandbox/numbers/100000000000001", json={"throughput_level": "HIGH"}).raise_for_status()
    return 1000


def _naive(sandbox_url: str, engine, seconds: float) -> float:
    """One synchronous request at a time per shard, no pooling tricks, time-boxed: accepted msg/s."""
    import threading

    from include.whatsapp.client import build_template_message

    with engine.connect() as c:
        by_number = {}
        for pn, phone, name in c.execute(sa.text("SELECT p.phone_number_id, a.phone_e164, a.name "
                                                 "FROM delivery_plan p JOIN advisors a USING (advisor_id)")):
            by_number.setdefault(pn, []).append((phone, name))
    accepted = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(pn, rows):
        nonlocal accepted
        with httpx.Client(base_url=sandbox_url, headers={"Authorization": f"Bearer {TEST_TOKEN}"}, timeout=10) as c:
            for i, (phone, name) in enumerate(rows):
                if time.monotonic() >= stop_at:
                    return
                body = build_template_message(phone, "daily_pack_v1", "en", [name, "t", "d"],
                                              image_link="https://x/a.jpg", biz_opaque_callback_data=f"naive:{i}")
                if c.post(f"/v21.0/{pn}/messages", json=body).status_code == 200:
                    with lock:
                        accepted += 1
    threads = [threading.Thread(target=worker, args=item) for item in by_number.items()]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return accepted / (time.monotonic() - t0)


def run_case(n: int, setup: str, latency_ms: float, naive_seconds: float, mp_context) -> dict:
    from include.content import readiness as content
    from devtools import demo_world
    from include.delivery import planning

    sb = SandboxProcess(Path(tempfile.mkdtemp()))
    try:
        with app_database() as (pg, engine, url):
            demo_world.seed_world(engine, advisors=n, today=DAY)
            sb.configure(messaging_tier="TIER_UNLIMITED")
            ceiling = _configure_numbers(engine, sb, setup)
            content.assign_content(engine, DAY)
            plan = planning.build_plan(engine, DAY, TEMPLATES)
            if latency_ms:
                sb.faults(latency_ms_median=latency_ms, latency_ms_p99=latency_ms * 4)
            from include.delivery.fanout import enqueue, units_for

            t0 = time.perf_counter()
            enqueue(engine, DAY)
            units = units_for(engine, DAY)
            t_queued = time.perf_counter() - t0
            postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
            with CpuMeter({"sandbox": sb.proc.pid, "postgres": postmaster}) as cpu, \
                    ProcessPoolExecutor(PARALLELISM, mp_context=mp_context) as pool:
                results = list(pool.map(_send, [(url, sb.url, u) for u in units]))
            wall = time.perf_counter() - t0
            cpu_s = {"senders": round(sum(r["cpu_s"] for r in results), 1), **cpu.seconds()}
            with engine.connect() as c:
                accepted, first, last = c.execute(sa.text(
                    "SELECT count(*), min(accepted_at), max(accepted_at) FROM deliveries "
                    "WHERE status = 'accepted'")).one()
            span = (last - first).total_seconds() if accepted > 1 else wall
            if os.environ.get("BENCH_TRACE"):  # per-second accept counts, to see ramp-up and tail
                with engine.connect() as c:
                    series = c.execute(sa.text(
                        "SELECT extract(epoch FROM date_trunc('second', accepted_at))::bigint, count(*) "
                        "FROM deliveries GROUP BY 1 ORDER BY 1")).fetchall()
                print("per-second accepts:", [(t - series[0][0], n) for t, n in series])
            stats = sb.ledger_stats()
            achieved = accepted / span if span else 0.0
            naive_rate = _naive(sb.url, engine, naive_seconds) if naive_seconds else None
            return {
                "advisors": n, "setup": setup, "planned": plan.total, "accepted": accepted, "units": len(units),
                "ceiling_msgs_per_s": ceiling, "achieved_msgs_per_s": round(achieved, 1),
                "ratio_to_ceiling": round(achieved / ceiling, 3), "wall_s": round(wall, 1),
                "overhead_s": round(wall - plan.total / ceiling, 1),
                "fits_5_min_window": wall <= 300,
                "peak_sender_rss_mb": max(r["peak_rss_mb"] for r in results),
                "responses_130429": stats["counters"].get("throttled", 0),
                "sandbox_gc_pause_max_ms": stats["counters"].get("gc_pause_max_ms", 0),
                "duplicates_in_ledger": len(stats["duplicate_recipient_days"])
                + len(stats["duplicate_idempotency_keys"]),
                "naive_msgs_per_s": None if naive_rate is None else round(naive_rate, 1),
                "speedup_vs_naive": None if not naive_rate else round(achieved / naive_rate, 1),
                "sandbox_latency_ms_median": latency_ms,
                "enqueue_s": round(t_queued, 2),
                "unit_elapsed_s_max": max(r["elapsed_s"] for r in results),
                "unknown_outcomes": sum(r["unknown"] for r in results),
                "reconciled_accepted": sum(r["reconciled_accepted"] for r in results),
                "retried": sum(r["retried"] for r in results),
                # Where the two cores went while sending, and that per 1,000 messages.
                "cpu_s": cpu_s, "cpu_busy_ratio": round(sum(cpu_s.values()) / (wall * (os.cpu_count() or 1)), 2),
                "cpu_ms_per_msg": {k: round(v * 1000 / max(1, accepted), 2) for k, v in cpu_s.items()},
            }
    finally:
        sb.stop()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--setups", default="5x80,1x1000")
    p.add_argument("--latency-ms", type=float, default=30.0)
    p.add_argument("--naive-seconds", type=float, default=15.0)
    args = p.parse_args(argv)
    cases = []
    mp_context = _executor_context()
    for setup in args.setups.split(","):
        for n in (int(x) for x in args.sizes.split(",")):
            case = run_case(n, setup, args.latency_ms, args.naive_seconds, mp_context)
            print(case, flush=True)
            cases.append(case)
    big = [c for c in cases if c["advisors"] >= 10_000]
    figures = {"parallelism": PARALLELISM, "cases": cases, "targets": {
        "ratio_to_ceiling_at_10k_100k": ">= 0.95", "peak_sender_rss_mb_at_100k": "< 300", "overhead_s": "< 15",
        "100k_on_5x80_within_5_min": True, "duplicates": 0},
        "meets_ratio_target": all(c["ratio_to_ceiling"] >= 0.95 for c in big),
        "meets_overhead_target": all(c["overhead_s"] < 15 for c in cases),
        "no_duplicates": all(c["duplicates_in_ledger"] == 0 for c in cases)}
    write_result("fanout", figures)
    return figures


if __name__ == "__main__":
    main()
