"""What every task process imports before it runs a line of ours, preloaded once by the process that forks them.

Airflow's task runtime, DAG parsing and providers, and the third-party libraries include/ uses (pydantic-settings,
phonenumbers, slack_sdk, httpx, aiohttp, msgspec, SQLAlchemy, psycopg 3, uvloop). Measured, from a send_shard's
fork to its DAG parsed and the sender's modules imported: 0.36 s of imports without them, 0.10-0.12 s with these
preloaded; a fan-out run has 8 task starts, 4-5 of them at once on 2 cores.

* CeleryExecutor: the worker imports them before it forks its pool (Celery's `imports`, through
  [celery] celery_config_options = include.core.celery_config.CELERY_CONFIG), so every task process forked
  below it has them.
* LocalExecutor: `include.core.preloading_executor.PreloadingLocalExecutor` (the dev stack's executor) imports
  them in the scheduler before it forks the executor's workers.

The project's own modules on the tasks' path (PROJECT_MODULES) are preloaded too, but never served stale:
`preload_project()` records the mtime of every project file it imported, and a process forked afterwards (every task
process is) drops all of the project's modules at once if any of those files changed since, so it imports them fresh,
as without preloading. A change to include/ still reaches the next task without a restart of the scheduler or the
workers. They cost a task process 0.115 s of imports on an idle machine, with five senders starting at once on 2
cores about three times that in wall time.
"""
from __future__ import annotations

import functools
import importlib
import logging
import os
import sys

log = logging.getLogger(__name__)

MODULES: tuple[str, ...] = (
    "airflow.sdk.execution_time.task_runner", "airflow.sdk.execution_time.supervisor",
    "airflow.dag_processing.dagbag",  # a task process parses its DAG file with it
    "airflow.sdk.bases.decorator", "airflow.sdk.definitions.decorators", "airflow.sdk.definitions.timetables.trigger",
    "airflow.providers.common.compat.sdk", "airflow.providers.standard.operators.python",
    "airflow.providers.standard.operators.hitl", "airflow.providers.standard.decorators.python",
    "airflow.providers.standard.decorators.branch_python",
    "pydantic_settings", "phonenumbers", "slack_sdk", "httpx", "aiohttp", "msgspec", "sqlalchemy", "psycopg",
    "uvloop",
)

# The DAG files' own imports and the first imports of the fan-out's task bodies (prepare, send, validate).
PROJECT_MODULES: tuple[str, ...] = (
    "include.core.config", "include.core.dagkit", "include.core.dates", "include.core.db", "include.core.alerting",
    "include.delivery.tasks", "include.delivery.fanout", "include.whatsapp.client",
)
PROJECT_PACKAGE = "include"


def _project_module_names(package: str) -> list[str]:
    return [n for n in list(sys.modules) if n == package or n.startswith(package + ".")]


def project_files(package: str = PROJECT_PACKAGE) -> dict[str, int]:
    """mtime (ns) of the file of every module of `package` imported in this process."""
    files = {}
    for name in _project_module_names(package):
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            try:
                files[path] = os.stat(path).st_mtime_ns
            except OSError:
                files[path] = -1
    return files


def drop_project_modules(package: str = PROJECT_PACKAGE) -> None:
    for name in _project_module_names(package):
        del sys.modules[name]


def drop_if_changed(files: dict[str, int], package: str = PROJECT_PACKAGE) -> bool:
    """In a forked process: drop the project's modules if any preloaded file changed (or went away) since `files`
    was taken, so they are imported fresh. Returns whether they were dropped."""
    for path, mtime in files.items():
        try:
            now = os.stat(path).st_mtime_ns
        except OSError:
            now = -2
        if now != mtime:
            drop_project_modules(package)
            return True
    return False


def preload_project(modules: tuple[str, ...] = PROJECT_MODULES, package: str = PROJECT_PACKAGE) -> bool:
    """Import `modules` in this (forking) process and guard every later fork against a stale copy (module
    docstring). A module that fails to import is left to the tasks, which then report the error themselves: the
    scheduler or worker that preloads must not fail on it. Returns whether the preload happened."""
    try:
        for name in modules:
            importlib.import_module(name)
    except Exception:
        log.warning("preloading the project's modules failed; each task imports them itself", exc_info=True)
        drop_project_modules(package)
        return False
    os.register_at_fork(after_in_child=functools.partial(drop_if_changed, project_files(package), package))
    return True
