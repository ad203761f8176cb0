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

The project's own code is deliberately not preloaded: a change to include/ reaches the next task without a
restart of the scheduler or the workers.
"""
from __future__ import annotations

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
