"""The modules preloaded for task processes (include/core/task_preload.py) exist, are not the project's own code,
and a Celery worker (dev stack and compose alike) imports them before it forks its pool."""
import importlib
import subprocess
import sys
from pathlib import Path

from include.core import task_preload


def test_every_preloaded_module_imports():
    # A typo here would fail every Celery worker's start: caught here first.
    for name in task_preload.MODULES:
        importlib.import_module(name)


def test_the_projects_own_code_is_not_preloaded():
    assert not [m for m in task_preload.MODULES if m.split(".")[0] in ("include", "dags", "plugins", "devtools")]


def test_celery_workers_import_them_before_forking_their_pool():
    from devtools.devstack.celery_stack import airflow_env
    from include.core.celery_config import CELERY_CONFIG

    env = airflow_env("redis://127.0.0.1:1/0", "postgresql://x")
    assert env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == "include.core.celery_config.CELERY_CONFIG"
    assert set(task_preload.MODULES) <= set(CELERY_CONFIG["imports"])
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    # Airflow's own Celery settings are kept (broker, queues, acks, prefetch), only `imports` is added.
    assert {k: v for k, v in CELERY_CONFIG.items() if k != "imports"} == \
        {k: v for k, v in DEFAULT_CELERY_CONFIG.items() if k != "imports"}


def test_a_celery_worker_has_them_imported_before_its_pool_forks(tmp_path):
    """What `airflow celery worker` does with the config before forking its prefork pool (Celery's WorkController
    calls loader.init_worker()), in a fresh interpreter: afterwards every preloaded module is in the process."""
    script = tmp_path / "celery_worker_init.py"
    script.write_text(
        "import sys\n"
        "from celery import Celery\n"
        "from include.core.celery_config import CELERY_CONFIG\n"
        "from include.core.task_preload import MODULES\n"
        "before = [m for m in MODULES if m in sys.modules]\n"
        "app = Celery('airflow', config_source={**CELERY_CONFIG, 'broker_url': 'memory://'})\n"
        "app.loader.init_worker()\n"
        "print(len(before) < len(MODULES), [m for m in MODULES if m not in sys.modules])\n")
    import os

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True []"
