"""The modules preloaded for task processes (include/core/task_preload.py) exist, are not the project's own code,
and both executors have them imported before they fork: the dev stack's LocalExecutor and a Celery worker (dev stack
and compose alike)."""
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


def test_the_local_executors_workers_are_forked_with_them_imported(tmp_path):
    """PreloadingLocalExecutor.start() imports them, then forks its workers as LocalExecutor does (all at once,
    fork): a worker, and so every task process it forks, finds them imported. In a fresh interpreter."""
    from devtools.devstack.env import StackSettings

    env_vars = StackSettings(data_dir=tmp_path, app_db_conn_json="{}", airflow_db_url="postgresql://x",
                             sandbox_url="http://127.0.0.1:1").airflow_env()
    assert env_vars["AIRFLOW__CORE__EXECUTOR"] == "include.core.preloading_executor.PreloadingLocalExecutor"
    script = tmp_path / "local_executor_start.py"
    script.write_text(
        "import multiprocessing as mp, sys\n"
        "from include.core.preloading_executor import PreloadingLocalExecutor\n"
        "from include.core.task_preload import MODULES\n"
        "before = [m for m in MODULES if m in sys.modules]\n"
        "ex = PreloadingLocalExecutor(parallelism=2)\n"
        "ex.start()\n"
        "workers = list(ex.workers.values())\n"
        "print('RESULT', len(before) < len(MODULES), len(workers), all(w.is_alive() for w in workers),\n"
        "      [m for m in MODULES if m not in sys.modules], flush=True)\n"
        "ex.end()\n")
    import os

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "AIRFLOW_HOME": str(tmp_path),
           "AIRFLOW__CORE__EXECUTOR": env_vars["AIRFLOW__CORE__EXECUTOR"],
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")] == ["RESULT True 2 True []"], out.stdout
