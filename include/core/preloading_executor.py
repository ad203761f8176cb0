"""Airflow's LocalExecutor, with the modules every task process imports (include/core/task_preload.py) imported
once in the scheduler before it forks the executor's workers: each task's process, forked below a worker, starts
with them instead of importing them itself.

Airflow 3.3's own route to this, `[scheduler] mp_start_method = forkserver` with `[core] mp_forkserver_preload`,
spawns the workers one at a time, on demand: a fan-out's fifth sender waited 3.6 s for its worker on the first run
after a restart (bench.fanout_dag). This keeps fork, so all `parallelism` workers are forked at start as usual.

Set with AIRFLOW__CORE__EXECUTOR=include.core.preloading_executor.PreloadingLocalExecutor (the dev stack does).
"""
from __future__ import annotations

import importlib

from airflow.executors.local_executor import LocalExecutor

from include.core import task_preload


class PreloadingLocalExecutor(LocalExecutor):
    def start(self) -> None:
        for name in task_preload.MODULES:
            importlib.import_module(name)
        task_preload.preload_project()
        super().start()
