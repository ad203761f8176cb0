"""The modules preloaded for task processes (include/core/task_preload.py) exist, are not the project's own code,
and reach both executors: the LocalExecutor's forkserver and the Celery workers (dev stack and compose alike)."""
import importlib
import subprocess
import sys

from include.core import task_preload


def test_every_preloaded_module_imports():
    # multiprocessing's forkserver skips a preload that fails to import, silently: a typo here would cost every
    # task its import time again without a word.
    for name in task_preload.MODULES:
        importlib.import_module(name)


def test_the_projects_own_code_is_not_preloaded():
    assert not [m for m in task_preload.MODULES if m.split(".")[0] in ("include", "dags", "plugins", "devtools")]


def test_a_task_process_finds_them_already_imported_in_the_local_executors_forkserver(tmp_path):
    from devtools.devstack.env import StackSettings

    env = StackSettings(data_dir=tmp_path, app_db_conn_json="{}",
                        airflow_db_url="postgresql://x", sandbox_url="http://127.0.0.1:1").airflow_env()
    assert env["AIRFLOW__SCHEDULER__MP_START_METHOD"] == "forkserver"
    preload = env["AIRFLOW__CORE__MP_FORKSERVER_PRELOAD"].split(",")
    assert preload[0] == "airflow.executors.local_executor" and set(task_preload.MODULES) <= set(preload)
    # What the forkserver does with that list, in a fresh interpreter: a process it forks has the modules.
    script = tmp_path / "forkserver_child.py"
    script.write_text(
        "import multiprocessing as mp, sys\n"
        f"WANTED = {list(task_preload.MODULES)!r}\n"
        "def child(q):\n"
        "    q.put(sorted(m for m in WANTED if m in sys.modules))\n"
        "if __name__ == '__main__':\n"
        f"    ctx = mp.get_context('forkserver'); ctx.set_forkserver_preload({preload!r})\n"
        "    q = ctx.Queue(); p = ctx.Process(target=child, args=(q,)); p.start()\n"
        "    print(q.get(timeout=120)); p.join()\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(sorted(task_preload.MODULES))


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
