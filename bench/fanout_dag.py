"""The fan-out through the real scheduler: `make run`'s stack (embedded PostgreSQL, the sandbox with its
webhooks going to the standalone webhook receiver, Airflow's api-server, scheduler, dag-processor and triggerer;
LocalExecutor with 8 slots, or with `--executor celery` the Redis broker and the two Celery workers of
`make run EXECUTOR=celery`) and fan-out runs (`ops_backfill_delivery` for a past day: the fan-out's tasks behind
an audited authorisation) triggered through the REST API. `--runs N` measures N runs on the same stack (one past
day each: yesterday, the day before, ...) and reports each run and the medians.

bench.fanout runs the sender units the way the executor does, with the scheduler left out; this one
measures what an operator sees in the UI: the DAG run from `queued_at` to `end_date`, and where the
time went (scheduling, prepare_send_queue, the mapped send_shard tasks, validate_delivery_sla).

    .venv/bin/python -m bench.fanout_dag [--advisors 10000] [--setup 5x80] [--latency-ms 30] [--webhooks on|off]
                                         [--executor local|celery] [--runs 1] [--cpus 1.4]

`--cpus` runs the whole stack inside a cgroup CPU quota (root only): the figures of a slower machine, to see how
much margin a set has (this VM's speed varies from day to day; each result records its core speed).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import re
import signal
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.common import CpuMeter, cpu_quota, write_result
from tests.support import fanout_slot_far_from_now, read_stack_banner, start_stack

TEMPLATES = {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"}


class _Admin:
    """What bench.fanout._configure_numbers needs of a sandbox: its admin client."""

    def __init__(self, url: str):
        self.admin = httpx.Client(base_url=url, timeout=10)


# The fan-out of a date other than today: the audited backfill DAG (same tasks as delivery_fanout).
DAG_ID = "ops_backfill_delivery"

def _start_stack(data_dir: Path, advisors: int, executor: str, idle_sleep: float | None = None,
                 timeout_s: float = 600) -> tuple[subprocess.Popen, dict]:
    # EXECUTOR is what `make run EXECUTOR=celery` passes to the supervisor (stack.py --executor's default).
    # The scheduled fan-out's slot 12 h away: a stack booted after 06:30 IST would otherwise run that morning's slot
    # late, and its run waits up to 20 min for on-call's answer (late start) while this waits for a quiet stack.
    # No spend budget: each run sends ~10,000 marketing messages of a past day, but spend counts on the day the
    # money is spent (today), so the third run crossed the ₹25,000 daily default and the guard stopped it.
    extra = {"EXECUTOR": executor, **fanout_slot_far_from_now(), "FA_BUDGET_DAILY_INR": "0",
             "FA_BUDGET_MONTHLY_INR": "0"}
    if idle_sleep is not None:  # else the dev stack's own setting (devtools/devstack/env.py)
        extra["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"] = str(idle_sleep)
    proc, api_port, sandbox_port = start_stack(data_dir, advisors, extra_env=extra)
    out = read_stack_banner(proc, timeout_s)
    login = re.search(r"login: admin / (\S+)", out)
    if "Stop with Ctrl-C" not in out or login is None:
        _stop_stack(proc)
        raise RuntimeError("the stack did not come up:\n" + out[-4000:])
    if executor == "celery" and "Celery workers answering" not in out:
        _stop_stack(proc)
        raise RuntimeError("the Celery workers did not come up:\n" + out[-4000:])
    return proc, {"api": f"http://127.0.0.1:{api_port}", "sandbox": f"http://127.0.0.1:{sandbox_port}",
                  "password": login.group(1)}


def _cpu_roots(data_dir: Path, supervisor: int, postmaster: int) -> dict[str, int]:
    """Process trees to meter, by label: each supervised child on its own (scheduler, api-server, receiver, the
    Celery workers, ...), the supervisor itself as `stack`, and PostgreSQL."""
    children = json.loads((data_dir / "run" / "stack.json").read_text())["children"]
    return {"stack": supervisor, **children, "postgres": postmaster}


def _stop_stack(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=90)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


# Task states that take CPU or will soon. A run parked on a person (`awaiting_input`: an incident waiting for its
# acknowledgement, opened by a start-up run's page) or on a trigger costs nothing and may wait for hours.
_WORKING = ("scheduled", "queued", "running", "up_for_retry", "up_for_reschedule", "restarting")


def _wait_for_quiet(api: httpx.Client, timeout_s: float = 900, quiet_s: float = 10) -> None:
    """Until no task of any DAG run is working (the start-up runs of the scheduled DAGs)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        busy = api.get("/api/v2/dags/~/dagRuns", params=[("state", "queued"), ("limit", "1")]).json()[
            "total_entries"]
        busy += api.get("/api/v2/dags/~/dagRuns/~/taskInstances",
                        params=[*(("state", s) for s in _WORKING), ("limit", "1")]).json()["total_entries"]
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        time.sleep(2)
    raise RuntimeError("DAG runs kept running; cannot measure on a busy stack")


# The fan-out's tables that grow with each day's sends: rows per advisor per day (a send, its attempt, about three
# status events, its spend row; the plan and the content assignment).
_DAILY_ROWS_PER_ADVISOR = {"deliveries": 1, "delivery_attempts": 1, "webhook_events": 3, "message_spend": 1,
                           "delivery_plan": 1, "pack_assignments": 1}


def _production_sized_autovacuum(engine, advisors: int) -> None:
    """Give the hot tables the autovacuum thresholds they have in production, where they hold RETENTION_DAYS (90)
    days of rows: PostgreSQL vacuums a table once its dead (or newly inserted) rows pass 20% of it, and a day's
    churn (~5 row versions per delivery) is a few percent of 90 days. Here they hold a few days, so a run's own churn
    crossed that line and autovacuum passes on them landed inside the sending window in 3 of 10 runs (PostgreSQL up to
    +2 CPU-s; ratios 0.79, 0.82, 0.93 in those runs against a 0.95 median). The thresholds below are what the
    missing days would add; the runs are vacuumed between them instead (_maintained), as the maintenance DAGs and
    autovacuum do overnight."""
    from include.core import config

    with engine.begin() as c:
        for table, per_advisor in _DAILY_ROWS_PER_ADVISOR.items():
            rows = config.RETENTION_DAYS * per_advisor * advisors
            c.execute(sa.text(f"ALTER TABLE {table} SET (autovacuum_vacuum_threshold = {int(0.2 * rows)}, "
                              f"autovacuum_vacuum_insert_threshold = {int(0.2 * rows)}, "
                              f"autovacuum_analyze_threshold = {int(0.1 * rows)})"))


def _maintained(engine) -> None:
    """VACUUM (ANALYZE) the hot tables before a run: the state the night leaves them in before 06:00."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("VACUUM (ANALYZE) " + ", ".join(_DAILY_ROWS_PER_ADVISOR)))


def _autovacuums(engine) -> dict[str, int]:
    with engine.connect() as c:
        return {r.relname: int(r.n) for r in c.execute(sa.text(
            "SELECT relname, autovacuum_count + autoanalyze_count AS n FROM pg_stat_user_tables"))}


def _webhooks_drained(sandbox: _Admin, timeout_s: float = 300) -> float:
    """Seconds until the sandbox has no status webhook scheduled, queued or in flight: the previous run's webhooks
    (3 per message, some sent seconds after the message) must not load the cores while the next run is measured."""
    started = time.monotonic()
    while sandbox.admin.get("/_sandbox/webhooks/stats").json()["pending"]:
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"the sandbox's webhooks did not drain in {timeout_s:.0f} s")
        time.sleep(0.5)
    return round(time.monotonic() - started, 1)


def _ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def run(advisors: int, setup: str, latency_ms: float, webhooks: bool, executor: str = "local",
        runs: int = 1, idle_sleep: float | None = None, keep_data: bool = False) -> list[dict]:
    from bench.fanout import _configure_numbers
    from include.core import db
    from include.core.dates import ist_today
    from devtools.devstack.pg import EmbeddedPostgres

    data_dir = Path(tempfile.mkdtemp(prefix="fa-bench-dag-"))
    proc, urls = _start_stack(data_dir, advisors, executor, idle_sleep)
    cases = []
    try:
        pg = EmbeddedPostgres(data_dir / "pg")
        engine = db.get_engine(pg.url("app"))
        sandbox = _Admin(urls["sandbox"])
        sandbox.admin.post("/_sandbox/config", json={"messaging_tier": "TIER_UNLIMITED"}).raise_for_status()
        ceiling = _configure_numbers(engine, sandbox, setup)
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
        if not webhooks:  # status webhooks would load the receiver on the same 2 cores
            sandbox.admin.post("/_sandbox/config", json={"webhooks": {"url": ""}}).raise_for_status()
        _production_sized_autovacuum(engine, advisors)
        postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
        roots = _cpu_roots(data_dir, proc.pid, postmaster)
        for n in range(1, runs + 1):
            # Starting the stack runs the latest scheduled slot of each DAG (catchup=False still runs the most
            # recent one): today's 05:50 check, 06:00 fan-out and reports. They have finished (quiet); each run is
            # for a past day (yesterday, then the day before, ...), so nothing else competes for the 2 cores and
            # no row is shared. A date other than today goes through ops_backfill_delivery (delivery_fanout
            # delivers today only): the same prepare/send/validate tasks behind one audited authorise_backfill.
            _maintained(engine)
            case = _one_run(engine, sandbox, api, roots, ist_today() - dt.timedelta(days=n), ceiling, webhooks)
            case.update(advisors=advisors, setup=setup, executor=executor, sandbox_latency_ms_median=latency_ms,
                        run=n, load_avg_1m_before=case.pop("_load"),
                        scheduler_idle_sleep_s=idle_sleep if idle_sleep is not None else "stack default")
            print(json.dumps(case), flush=True)
            cases.append(case)
            _wait_for_quiet(api, quiet_s=3)
    finally:
        _stop_stack(proc)
        if keep_data:  # the task logs (logs/airflow/dag_id=...), both databases, the sandbox's files
            print(f"stack data kept in {data_dir}", flush=True)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)  # ~1.5 GB a stack
    return cases


def _one_run(engine, sandbox: _Admin, api: httpx.Client, roots: dict[str, int], day: dt.date, ceiling: int,
             webhooks: bool) -> dict:
    from include.content import readiness as content
    from include.delivery import planning

    content.assign_content(engine, day)
    planned = planning.build_plan(engine, day, TEMPLATES).total
    throttled_before = sandbox.admin.get("/_sandbox/ledger/stats").json()["counters"].get("throttled", 0)
    _webhooks_drained(sandbox)
    vacuums_before = _autovacuums(engine)
    hooks_before = sandbox.admin.get("/_sandbox/webhooks/stats").json()
    load = round(os.getloadavg()[0], 2)
    with CpuMeter(roots) as cpu:
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
    others = api.get("/api/v2/dags/~/dagRuns/~/taskInstances", params={
        "limit": 100, "start_date_lte": dr["end_date"], "end_date_gte": dr["queued_at"]})
    others.raise_for_status()
    others = sorted({f"{t['dag_id']}.{t['task_id']}" for t in others.json()["task_instances"]
                     if t["dag_id"] != DAG_ID})
    with engine.connect() as c:
        accepted, first, last = c.execute(sa.text(
            "SELECT count(*), min(accepted_at), max(accepted_at) FROM deliveries "
            "WHERE business_date = :d AND status IN ('accepted', 'sent', 'delivered', 'read')"),
            {"d": day}).one()
        per_unit = c.execute(sa.text(
            "SELECT p.shard, p.segment, count(*) AS n, min(d.accepted_at) AS first, max(d.accepted_at) AS last "
            "FROM deliveries d JOIN delivery_plan p USING (business_date, advisor_id) "
            "WHERE d.business_date = :d AND d.accepted_at IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"),
            {"d": day}).fetchall()
    hooks_after = sandbox.admin.get("/_sandbox/webhooks/stats").json()
    vacuums_after = _autovacuums(engine)
    stats = sandbox.admin.get("/_sandbox/ledger/stats").json()
    drain_s = _webhooks_drained(sandbox)
    # Each sender's own account of its start (its result XCom): checks before sending, then waiting for its peers.
    # The rest of "first sender start to first accept" is the task process's start before the sender code runs.
    senders_start = []
    for t in sorted((t for t in tis if t["task_id"] == "send_shard"), key=lambda t: t["map_index"]):
        got = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/send_shard/xcomEntries/return_value",
                      params={"map_index": t["map_index"], "deserialize": True, "stringify": False})
        value = got.json().get("value") if got.status_code == 200 else None
        if isinstance(value, dict):
            senders_start.append({"map_index": t["map_index"], "startup_s": value.get("startup_s"),
                                  "start_gate_s": value.get("start_gate_s")})

    queued, started, ended = _ts(dr["queued_at"]), _ts(dr["start_date"]), _ts(dr["end_date"])
    wall = (ended - queued).total_seconds()

    def span(task_id: str) -> tuple[dt.datetime, dt.datetime]:
        mine = [t for t in tis if t["task_id"] == task_id and t["start_date"] and t["end_date"]]
        if not mine:
            states = [(t["task_id"], t.get("map_index"), t["state"]) for t in tis]
            raise RuntimeError(f"run {dr['dag_run_id']} ended {dr['state']} without a finished {task_id}: {states}")
        return min(_ts(t["start_date"]) for t in mine), max(_ts(t["end_date"]) for t in mine)

    def secs(a: dt.datetime, b: dt.datetime) -> float:
        return round((b - a).total_seconds(), 1)

    auth, prep = span("authorise_backfill"), span("prepare_send_queue")
    send, check = span("send_shard"), span("validate_delivery_sla")
    sending = (last - first).total_seconds() if accepted > 1 else 0.0
    achieved = accepted / sending if sending else 0.0
    phases = {
        "queued_to_running": secs(queued, started),
        "running_to_prepare_start": secs(started, prep[0]),
        "running_to_authorise_start": secs(started, auth[0]),
        "authorise_backfill": secs(*auth),
        "authorise_end_to_prepare_start": secs(auth[1], prep[0]),
        "prepare_send_queue": secs(*prep),
        "prepare_end_to_first_sender": secs(prep[1], send[0]),
        "first_sender_start_to_first_accept": secs(send[0], first) if first else None,
        "first_to_last_accept": round(sending, 1),
        "last_accept_to_last_sender_end": secs(last, send[1]) if last else None,
        "last_sender_end_to_validate_start": secs(send[1], check[0]),
        "validate_delivery_sla": secs(*check),
        "last_task_to_run_end": secs(check[1], ended),
    }
    # Where the overhead (wall - planned/ceiling) goes: the scheduler's hand-offs between tasks, the tasks' own
    # work, the senders' start before their first accepted message, and sending below the ceiling.
    ideal = planned / ceiling
    overhead = {
        "scheduler_handoffs": round(sum(phases[k] for k in (
            "queued_to_running", "running_to_authorise_start", "authorise_end_to_prepare_start",
            "prepare_end_to_first_sender", "last_sender_end_to_validate_start", "last_task_to_run_end")), 1),
        "authorise_prepare_validate": round(phases["authorise_backfill"] + phases["prepare_send_queue"]
                                            + phases["validate_delivery_sla"], 1),
        "sender_start_to_first_accept": phases["first_sender_start_to_first_accept"],
        "sending_below_ceiling": round(sending - ideal, 1),
        "last_accept_to_sender_end": phases["last_accept_to_last_sender_end"],
    }
    return {
        "state": dr["state"], "business_date": day.isoformat(), "planned": planned, "accepted": accepted,
        "mapped_send_shard": sum(1 for t in tis if t["task_id"] == "send_shard"),
        "ceiling_msgs_per_s": ceiling, "achieved_msgs_per_s": round(achieved, 1),
        "ratio_to_ceiling": round(achieved / ceiling, 3),
        "dag_run_wall_s": round(wall, 1), "overhead_s": round(wall - ideal, 1),
        # The run's time outside its sending window (first to last accepted message): scheduling, task starts and
        # the tasks' own work before and after, what the orchestration adds whatever the sending rate.
        "orchestration_s": round(wall - sending, 1),
        "fits_5_min_window": wall <= 300, "phases_s": phases, "overhead_breakdown_s": overhead,
        # Each task instance's start and end, in seconds from the run's queued_at (where a hand-off or a slow start
        # is, task by task).
        "tasks_s": [{"task": t["task_id"] + (f"[{t['map_index']}]" if t.get("map_index", -1) >= 0 else ""),
                     "try": t.get("try_number"), "start": secs(queued, _ts(t["start_date"])),
                     "end": secs(queued, _ts(t["end_date"]))}
                    for t in sorted(tis, key=lambda t: (t["start_date"] or "", t.get("map_index", -1)))
                    if t["start_date"] and t["end_date"]],
        # Each (shard, segment)'s first and last accepted message, from queued_at: how far apart the senders
        # started and finished sending.
        "segments_accepting_s": [{"shard": r.shard, "segment": r.segment, "accepted": r.n,
                                  "first": secs(queued, r.first), "last": secs(queued, r.last)} for r in per_unit],
        "senders_start_s": senders_start,
        "responses_130429": stats["counters"].get("throttled", 0) - throttled_before,
        # The stack's start-up run also messaged every advisor (same real day), so duplicates are counted by
        # idempotency key (business date, advisor), not by recipient and day.
        "duplicate_keys_in_ledger": len(stats["duplicate_idempotency_keys"]),
        "cpu_s": cpu.seconds(), "status_webhooks": webhooks, "_load": load,
        # Status webhooks the sandbox delivered to the receiver during the run, still pending at its end, and how
        # long after the run they took to drain.
        "webhooks_delivered_during_run": hooks_after.get("delivered", 0) - hooks_before.get("delivered", 0),
        "webhooks_pending_at_run_end": hooks_after["pending"], "webhooks_drain_after_run_s": drain_s,
        # POSTs that carried them: the receiver's and PostgreSQL's work per event falls as batches grow.
        "webhook_posts_during_run": hooks_after.get("posts", 0) - hooks_before.get("posts", 0),
        # Other DAGs' tasks that ran during the run (they share the executor's slots and the cores).
        "other_tasks_during_run": others,
        # Autovacuum and autoanalyze passes PostgreSQL made on the app's tables during the run: each costs CPU inside
        # the window (_production_sized_autovacuum keeps the hot tables' own churn from starting one).
        "autovacuums_during_run": {t: n - vacuums_before.get(t, 0) for t, n in vacuums_after.items()
                                   if n != vacuums_before.get(t, 0)},
    }


def _median_of(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def summarise(cases: list[dict]) -> dict:
    """Medians over the runs of one stack (each run's figures are kept beside them)."""
    def med(get):
        return _median_of([get(c) for c in cases])

    first = cases[0]
    return {
        "runs": len(cases), "executor": first["executor"], "setup": first["setup"], "advisors": first["advisors"],
        "scheduler_idle_sleep_s": first["scheduler_idle_sleep_s"],
        "status_webhooks": first["status_webhooks"], "all_success": all(c["state"] == "success" for c in cases),
        "median_ratio_to_ceiling": med(lambda c: c["ratio_to_ceiling"]),
        "median_achieved_msgs_per_s": med(lambda c: c["achieved_msgs_per_s"]),
        "median_dag_run_wall_s": med(lambda c: c["dag_run_wall_s"]),
        "median_overhead_s": med(lambda c: c["overhead_s"]),
        "median_orchestration_s": med(lambda c: c["orchestration_s"]),
        "median_overhead_breakdown_s": {k: med(lambda c, k=k: c["overhead_breakdown_s"][k])
                                        for k in first["overhead_breakdown_s"]},
        "median_phases_s": {k: med(lambda c, k=k: c["phases_s"][k]) for k in first["phases_s"]},
        # Median over every sender of every run: its checks before sending, and the wait for its peers.
        "median_sender_startup_s": _median_of([s["startup_s"] for c in cases for s in c["senders_start_s"]]),
        "median_webhook_events_per_post": _median_of([
            round(c["webhooks_delivered_during_run"] / c["webhook_posts_during_run"], 1)
            for c in cases if c.get("webhook_posts_during_run")]),
        "median_sender_start_gate_s": _median_of([s["start_gate_s"] for c in cases for s in c["senders_start_s"]]),
        "duplicate_keys_in_ledger": max(c["duplicate_keys_in_ledger"] for c in cases),
        "load_avg_1m_before": [c["load_avg_1m_before"] for c in cases],
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--advisors", type=int, default=10_000)
    p.add_argument("--setup", default="5x80", choices=["5x80", "1x1000"])
    p.add_argument("--latency-ms", type=float, default=30.0)
    p.add_argument("--webhooks", choices=["on", "off"], default="on",
                   help="the sandbox's status webhooks to the standalone receiver (on, as make run does)")
    p.add_argument("--executor", choices=["local", "celery"], default="local",
                   help="LocalExecutor (make run) or Celery, broker and 2 workers (make run EXECUTOR=celery)")
    p.add_argument("--runs", type=int, default=1, help="fan-out runs on the same stack (one past day each)")
    p.add_argument("--scheduler-idle-sleep", type=float, default=None,
                   help="[scheduler] scheduler_idle_sleep_time for this stack (default: the dev stack's)")
    p.add_argument("--keep-data", action="store_true",
                   help="keep the stack's data directory (task logs, databases) instead of deleting it")
    p.add_argument("--cpus", type=float, default=None,
                   help="run the stack on at most this many CPUs' worth of time (a cgroup quota; needs root)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    if args.cpus is not None and not 0.2 <= args.cpus <= (os.cpu_count() or 1):
        p.error(f"--cpus must be between 0.2 and the machine's {os.cpu_count()} CPUs, got {args.cpus}")
    with cpu_quota(args.cpus):
        cases = run(args.advisors, args.setup, args.latency_ms, args.webhooks == "on", args.executor, args.runs,
                    args.scheduler_idle_sleep, args.keep_data)
    summary = summarise(cases)
    summary["cpu_quota_cores"] = args.cpus
    print(json.dumps(summary), flush=True)
    label = "" if args.scheduler_idle_sleep is None else f"_idle{args.scheduler_idle_sleep:g}"
    label += "" if args.cpus is None else f"_cpus{args.cpus:g}"
    write_result(f"fanout_dag_{args.executor}_{args.setup}_{args.advisors}_webhooks_{args.webhooks}{label}",
                 {"summary": summary, "cases": cases, "case": cases[len(cases) // 2]})
    return summary


if __name__ == "__main__":
    main()
