"""The fan-out through the real scheduler: `make run`'s stack (embedded PostgreSQL, the sandbox with its
webhooks going to the receiver plugin, Airflow's api-server, scheduler, dag-processor and triggerer;
LocalExecutor with 6 slots) and one fan-out run (`ops_backfill_delivery` for yesterday: the fan-out's tasks behind
an audited authorisation) triggered through the REST API.

bench.fanout runs the sender units the way the executor does, with the scheduler left out; this one
measures what an operator sees in the UI: the DAG run from `queued_at` to `end_date`, and where the
time went (scheduling, prepare_send_queue, the mapped send_shard tasks, validate_delivery_sla).

    .venv/bin/python -m bench.fanout_dag [--advisors 10000] [--setup 5x80] [--latency-ms 30] [--webhooks on|off]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.common import CpuMeter, write_result
from tests.support import read_stack_banner, start_stack

TEMPLATES = {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"}


class _Admin:
    """What bench.fanout._configure_numbers needs of a sandbox: its admin client."""

    def __init__(self, url: str):
        self.admin = httpx.Client(base_url=url, timeout=10)


# The fan-out of a date other than today: the audited backfill DAG (same tasks as delivery_fanout).
DAG_ID = "ops_backfill_delivery"

def _start_stack(data_dir: Path, advisors: int, timeout_s: float = 600) -> tuple[subprocess.Popen, dict]:
    proc, api_port, sandbox_port = start_stack(data_dir, advisors)
    out = read_stack_banner(proc, timeout_s)
    login = re.search(r"login: admin / (\S+)", out)
    if "Stop with Ctrl-C" not in out or login is None:
        _stop_stack(proc)
        raise RuntimeError("the stack did not come up:\n" + out[-4000:])
    return proc, {"api": f"http://127.0.0.1:{api_port}", "sandbox": f"http://127.0.0.1:{sandbox_port}",
                  "password": login.group(1)}


def _stop_stack(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=90)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def _wait_for_quiet(api: httpx.Client, timeout_s: float = 900) -> None:
    """Until no DAG run is queued or running (the start-up runs of the scheduled DAGs)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        busy = api.get("/api/v2/dags/~/dagRuns", params=[("state", "queued"), ("state", "running"),
                                                         ("limit", "1")]).json()["total_entries"]
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 10:
            return
        time.sleep(2)
    raise RuntimeError("DAG runs kept running; cannot measure on a busy stack")


def _ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def run(advisors: int, setup: str, latency_ms: float, webhooks: bool) -> dict:
    from bench.fanout import _configure_numbers
    from include.content import readiness as content
    from include.core import db
    from include.delivery import planning
    from include.core.dates import ist_today
    from devtools.devstack.pg import EmbeddedPostgres

    data_dir = Path(tempfile.mkdtemp(prefix="fa-bench-dag-"))
    proc, urls = _start_stack(data_dir, advisors)
    try:
        pg = EmbeddedPostgres(data_dir / "pg")
        engine = db.get_engine(pg.url("app"))
        # Starting the stack runs the latest scheduled slot of each DAG (catchup=False still runs the most
        # recent one): today's 05:50 check, 06:00 fan-out and reports. Let them finish, then measure a run
        # for yesterday, so nothing else competes for the 2 cores and no row is shared with them. A date other
        # than today goes through ops_backfill_delivery (delivery_fanout delivers today only): the same
        # prepare/send/validate tasks behind one audited authorise_backfill task.
        day = ist_today() - dt.timedelta(days=1)
        sandbox = _Admin(urls["sandbox"])
        sandbox.admin.post("/_sandbox/config", json={"messaging_tier": "TIER_UNLIMITED"}).raise_for_status()
        ceiling = _configure_numbers(engine, sandbox, setup)
        content.assign_content(engine, day)
        planned = planning.build_plan(engine, day, TEMPLATES).total
        sandbox.admin.post("/_sandbox/faults", json={"latency_ms_median": latency_ms,
                                                     "latency_ms_p99": latency_ms * 4}).raise_for_status()
        api = httpx.Client(base_url=urls["api"], timeout=30)
        token = api.post("/auth/token", json={"username": "admin", "password": urls["password"]})
        token.raise_for_status()
        api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        deadline = time.monotonic() + 180
        while api.get(f"/api/v2/dags/{DAG_ID}").status_code != 200:  # parsed by the dag-processor
            if time.monotonic() > deadline:
                raise RuntimeError(f"{DAG_ID} was never parsed")
            time.sleep(1)
        _wait_for_quiet(api)
        if not webhooks:  # status webhooks would load the api-server (the receiver) on the same 2 cores
            sandbox.admin.post("/_sandbox/config", json={"webhooks": {"url": ""}}).raise_for_status()
        throttled_before = sandbox.admin.get("/_sandbox/ledger/stats").json()["counters"].get("throttled", 0)
        postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
        with CpuMeter({"stack": proc.pid, "postgres": postmaster}) as cpu:
            resp = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={
                "logical_date": None, "conf": {"business_date": day.isoformat(), "honour_jitter": False,
                                               "reason": "benchmark: fan-out through the scheduler"}})
            resp.raise_for_status()
            run_id = resp.json()["dag_run_id"]
            while True:
                dr = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}").json()
                if dr["state"] in ("success", "failed"):
                    break
                time.sleep(0.5)
        tis = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
                      params={"limit": 100}).json()["task_instances"]
        with engine.connect() as c:
            accepted, first, last = c.execute(sa.text(
                "SELECT count(*), min(accepted_at), max(accepted_at) FROM deliveries "
                "WHERE business_date = :d AND status IN ('accepted', 'sent', 'delivered', 'read')"),
                {"d": day}).one()
        stats = sandbox.admin.get("/_sandbox/ledger/stats").json()
    finally:
        _stop_stack(proc)

    queued, started, ended = _ts(dr["queued_at"]), _ts(dr["start_date"]), _ts(dr["end_date"])
    wall = (ended - queued).total_seconds()

    def span(task_id: str) -> tuple[dt.datetime, dt.datetime]:
        mine = [t for t in tis if t["task_id"] == task_id and t["start_date"] and t["end_date"]]
        if not mine:
            states = [(t["task_id"], t.get("map_index"), t["state"]) for t in tis]
            raise RuntimeError(f"run {dr['dag_run_id']} ended {dr['state']} without a finished {task_id}: {states}")
        return min(_ts(t["start_date"]) for t in mine), max(_ts(t["end_date"]) for t in mine)

    prep, send, check = span("prepare_send_queue"), span("send_shard"), span("validate_delivery_sla")
    sending = (last - first).total_seconds() if accepted > 1 else 0.0
    achieved = accepted / sending if sending else 0.0
    return {
        "advisors": advisors, "setup": setup, "state": dr["state"], "planned": planned, "accepted": accepted,
        "mapped_send_shard": sum(1 for t in tis if t["task_id"] == "send_shard"),
        "ceiling_msgs_per_s": ceiling, "achieved_msgs_per_s": round(achieved, 1),
        "ratio_to_ceiling": round(achieved / ceiling, 3),
        "dag_run_wall_s": round(wall, 1), "overhead_s": round(wall - planned / ceiling, 1),
        "fits_5_min_window": wall <= 300,
        "phases_s": {
            "queued_to_running": round((started - queued).total_seconds(), 1),
            "running_to_prepare_start": round((prep[0] - started).total_seconds(), 1),
            "prepare_send_queue": round((prep[1] - prep[0]).total_seconds(), 1),
            "prepare_end_to_first_sender": round((send[0] - prep[1]).total_seconds(), 1),
            "first_sender_start_to_first_accept": round((first - send[0]).total_seconds(), 1) if first else None,
            "first_to_last_accept": round(sending, 1),
            "last_accept_to_last_sender_end": round((send[1] - last).total_seconds(), 1) if last else None,
            "validate_delivery_sla": round((check[1] - check[0]).total_seconds(), 1),
            "last_task_to_run_end": round((ended - check[1]).total_seconds(), 1),
        },
        "responses_130429": stats["counters"].get("throttled", 0) - throttled_before,
        # Today's start-up run also messaged every advisor (same real day), so duplicates are counted by
        # idempotency key (business date, advisor), not by recipient and day.
        "duplicate_keys_in_ledger": len(stats["duplicate_idempotency_keys"]),
        "cpu_s": cpu.seconds(), "sandbox_latency_ms_median": latency_ms, "status_webhooks": webhooks,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--advisors", type=int, default=10_000)
    p.add_argument("--setup", default="5x80", choices=["5x80", "1x1000"])
    p.add_argument("--latency-ms", type=float, default=30.0)
    p.add_argument("--webhooks", choices=["on", "off"], default="on",
                   help="the sandbox's status webhooks to the receiver in the api-server (on, as make run does)")
    args = p.parse_args(argv)
    case = run(args.advisors, args.setup, args.latency_ms, args.webhooks == "on")
    print(case, flush=True)
    write_result(f"fanout_dag_{args.setup}_{args.advisors}_webhooks_{args.webhooks}", {"case": case})
    return case


if __name__ == "__main__":
    main()
