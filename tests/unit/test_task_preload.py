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
    # The third-party list; the project's own modules are preloaded separately, behind the staleness guard.
    assert not [m for m in task_preload.MODULES if m.split(".")[0] in ("include", "dags", "plugins", "devtools")]
    assert all(m.startswith("include.") for m in task_preload.PROJECT_MODULES)


def test_a_forked_process_imports_the_projects_code_fresh_once_a_preloaded_file_changed(tmp_path):
    """preload_project in a parent, then a forked child (as every task process is): with nothing changed the child
    uses the preloaded module; after its file changed the child drops the package and imports the new code."""
    result = _in_a_fresh_interpreter(tmp_path, (
        "import os, sys, time, json\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        f"pkg = os.path.join({str(tmp_path)!r}, 'faprobe')\n"
        "os.makedirs(pkg)\n"
        "open(os.path.join(pkg, '__init__.py'), 'w').close()\n"
        "mod = os.path.join(pkg, 'mod.py')\n"
        "open(mod, 'w').write('VALUE = 1\\n')\n"
        "from include.core import task_preload\n"
        "assert task_preload.preload_project(('faprobe.mod',), 'faprobe')\n"
        "def child():\n"
        "    r, w = os.pipe()\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os.close(r)\n"
        "        kept = 'faprobe.mod' in sys.modules\n"
        "        import faprobe.mod\n"
        "        os.write(w, json.dumps([kept, faprobe.mod.VALUE]).encode())\n"
        "        os._exit(0)\n"
        "    os.close(w)\n"
        "    os.waitpid(pid, 0)\n"
        "    return json.loads(os.read(r, 100))\n"
        "unchanged = child()\n"
        "open(mod, 'w').write('VALUE = 2\\n')\n"
        "os.utime(mod, ns=(time.time_ns(), time.time_ns() + 10**9))\n"
        "changed = child()\n"
        "result = {'unchanged': unchanged, 'changed': changed, 'parent': sys.modules['faprobe.mod'].VALUE}\n"))
    assert result == {"unchanged": [True, 1], "changed": [False, 2], "parent": 1}


def test_a_project_module_that_fails_to_import_is_left_to_the_tasks(tmp_path):
    """The scheduler or worker that preloads must not fail on a broken file in include/: the preload gives up,
    leaves none of the package imported, and each task then imports (and reports) it itself."""
    result = _in_a_fresh_interpreter(tmp_path, (
        "import os, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        f"pkg = os.path.join({str(tmp_path)!r}, 'faprobe_bad')\n"
        "os.makedirs(pkg)\n"
        "open(os.path.join(pkg, '__init__.py'), 'w').close()\n"
        "open(os.path.join(pkg, 'ok.py'), 'w').write('X = 1\\n')\n"
        "open(os.path.join(pkg, 'broken.py'), 'w').write('def (:\\n')\n"
        "from include.core import task_preload\n"
        "ok = task_preload.preload_project(('faprobe_bad.ok', 'faprobe_bad.broken'), 'faprobe_bad')\n"
        "result = {'preloaded': ok, 'left': [m for m in sys.modules if m.startswith('faprobe_bad')]}\n"))
    assert result == {"preloaded": False, "left": []}


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


def _in_a_fresh_interpreter(tmp_path, body: str, env: dict[str, str] | None = None):
    """Runs `body` in a new Python process and returns what it assigned to `result`. The result goes through a
    file, never stdout: the executor's workers log to stdout while the script prints (CI once saw them interleave)."""
    import json
    import os

    result_file = tmp_path / "result.json"
    script = tmp_path / "fresh_interpreter.py"
    script.write_text(body + f"\nimport json as _j\nopen({str(result_file)!r}, 'w').write(_j.dumps(result))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **(env or {})}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(result_file.read_text())


def test_a_celery_worker_has_them_imported_before_its_pool_forks(tmp_path):
    """What `airflow celery worker` does with the config before forking its prefork pool (Celery's WorkController
    calls loader.init_worker()), in a fresh interpreter: afterwards every preloaded module is in the process."""
    result = _in_a_fresh_interpreter(tmp_path, (
        "import sys\n"
        "from celery import Celery\n"
        "from include.core.celery_config import CELERY_CONFIG\n"
        "from include.core.task_preload import MODULES\n"
        "before = [m for m in MODULES if m in sys.modules]\n"
        "app = Celery('airflow', config_source={**CELERY_CONFIG, 'broker_url': 'memory://'})\n"
        "app.loader.init_worker()\n"
        "from include.core.task_preload import PROJECT_MODULES\n"
        "result = {'some_missing_before': len(before) < len(MODULES),\n"
        "          'missing_after': [m for m in MODULES + PROJECT_MODULES if m not in sys.modules]}\n"))
    assert result == {"some_missing_before": True, "missing_after": []}


def test_the_local_executors_workers_are_forked_with_them_imported(tmp_path):
    """PreloadingLocalExecutor.start() imports them, then forks its workers as LocalExecutor does (all at once,
    fork): a worker, and so every task process it forks, finds them imported. In a fresh interpreter."""
    from devtools.devstack.env import StackSettings

    env_vars = StackSettings(data_dir=tmp_path, app_db_conn_json="{}", airflow_db_url="postgresql://x",
                             sandbox_url="http://127.0.0.1:1").airflow_env()
    assert env_vars["AIRFLOW__CORE__EXECUTOR"] == "include.core.preloading_executor.PreloadingLocalExecutor"
    result = _in_a_fresh_interpreter(tmp_path, (
        "import sys\n"
        "from include.core.preloading_executor import PreloadingLocalExecutor\n"
        "from include.core import task_preload\n"
        "from include.core.task_preload import MODULES\n"
        "before = [m for m in MODULES if m in sys.modules]\n"
        "ex = PreloadingLocalExecutor(parallelism=2)\n"
        "ex.start()\n"
        "workers = list(ex.workers.values())\n"
        "result = {'some_missing_before': len(before) < len(MODULES), 'workers': len(workers),\n"
        "          'alive': all(w.is_alive() for w in workers),\n"
        "          'missing_after': [m for m in MODULES + task_preload.PROJECT_MODULES if m not in sys.modules]}\n"
        "ex.end()\n"), env={
            "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__EXECUTOR": env_vars["AIRFLOW__CORE__EXECUTOR"],
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}"})
    assert result == {"some_missing_before": True, "workers": 2, "alive": True, "missing_after": []}
