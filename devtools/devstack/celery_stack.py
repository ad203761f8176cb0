"""`make run EXECUTOR=celery`: Airflow's CeleryExecutor on this machine.

Queue layout (the same in docker-compose.yml):
* `delivery` — only `send_shard` (include/core/config.QUEUE_DELIVERY), served by the `celery-delivery` worker;
* `default`  — every other task ([operators] default_queue), served by the `celery-default` worker.

The scheduler puts task workloads on the Redis broker (devtools/devstack/broker.py); each worker runs them and
reports through the api-server's execution API, like any remote worker would. Celery's own task results go to
the Airflow metadata database (`db+` result backend).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from celery import Celery

from include.core import config


@dataclass(frozen=True)
class Worker:
    name: str          # the supervisor's child name (log file .data/logs/<name>.log)
    queue: str
    serve_logs: bool   # one log server per machine: both workers write into the same log folder


WORKERS = (Worker("celery-delivery", config.QUEUE_DELIVERY, serve_logs=False),
           Worker("celery-default", config.QUEUE_DEFAULT, serve_logs=True))
QUEUES = tuple(w.queue for w in WORKERS)
HEARTBEAT_TIMEOUT_S = "30"  # docker-compose.yml sets the same
# A worker that dies after taking a task off the broker but before the task starts (a second or so per task) leaves
# it `queued`: no heartbeat is expected yet, and Redis redelivers the unacknowledged message only after the visibility
# timeout. Airflow requeues such a task after [scheduler] task_queued_timeout, 600 s by default (plus a 120 s check
# interval): twice the 06:00-06:05 window. Here 60 s, checked every 10 s. A task waits that long in `queued` only when
# its worker is gone, as long as every worker's concurrency is at least [core] parallelism (here and in
# docker-compose.yml): the scheduler never hands out more tasks than that. After two requeues Airflow fails the task
# (its retries then apply), so a worker outage of 3 minutes pages instead of stalling.
QUEUED_TIMEOUT_S = "60"
QUEUED_TIMEOUT_CHECK_S = "10"


def airflow_env(broker_url: str, metadata_url: str) -> dict[str, str]:
    """What turns the stack's Airflow environment into a CeleryExecutor deployment (every component and worker)."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_url,
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": config.QUEUE_DEFAULT,
        # Airflow's Celery defaults plus the modules every task imports, preloaded before the pool forks.
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "include.core.celery_config.CELERY_CONFIG",
        # Redis redelivers an unacknowledged task after this long: longer than any task may run (send_shard's
        # execution_timeout is about 75 min), so a slow sender is never started twice by the broker. A worker
        # that dies is handled by the scheduler instead (heartbeat timeout, then the task's retries).
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
        # A worker lost at 06:01 must not leave its shards for Airflow's default 300 s, the whole 5-minute window:
        # its tasks are failed (then retried on a live worker) after 30 s without a heartbeat.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": os.environ.get(
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", HEARTBEAT_TIMEOUT_S),
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": os.environ.get(
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", QUEUED_TIMEOUT_S),
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": os.environ.get(
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL", QUEUED_TIMEOUT_CHECK_S),
    }


def worker_command(airflow: str, worker: Worker, concurrency: int, run_dir: Path) -> list[str]:
    cmd = [airflow, "celery", "worker", "--queues", worker.queue, "--concurrency", str(concurrency),
           "--celery-hostname", f"{worker.queue}@%h", "--pid", str(run_dir / f"{worker.name}.pid"),
           "--without-gossip", "--without-mingle"]
    if not worker.serve_logs:
        cmd.append("--skip-serve-logs")
    return cmd


def ping_workers(broker_url: str, timeout_s: float = 2.0) -> dict[str, str]:
    """{worker node name: 'pong'} for every worker that answers a broadcast ping over the broker."""
    app = Celery(broker=broker_url)
    try:
        replies = app.control.ping(timeout=timeout_s) or []
    finally:
        app.close()
    out: dict[str, str] = {}
    for reply in replies:
        for node, answer in reply.items():
            out[node] = answer.get("ok", str(answer)) if isinstance(answer, dict) else str(answer)
    return out


def active_queues(broker_url: str, timeout_s: float = 2.0) -> dict[str, list[str]]:
    """{worker node name: [queues it consumes]}."""
    app = Celery(broker=broker_url)
    try:
        found = app.control.inspect(timeout=timeout_s).active_queues() or {}
    finally:
        app.close()
    return {node: sorted(q["name"] for q in queues) for node, queues in found.items()}
