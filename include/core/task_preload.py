"""What every task process imports before it runs a line of ours, preloaded once by the process that forks them.

Airflow's task runtime, DAG parsing and providers, and the third-party libraries include/ uses (pydantic-settings,
phonenumbers, slack_sdk, httpx, SQLAlchemy, psycopg2, uvloop). Measured, from a send_shard's fork to its DAG parsed
and the sender's modules imported: 0.36 s of imports forked from the scheduler (Airflow's default), 0.10-0.12 s
with these preloaded; a fan-out run has 8 task starts, 4-5 of them at once on 2 cores.

* LocalExecutor: its workers come from a forkserver that imported these ([scheduler] mp_start_method =
  forkserver, [core] mp_forkserver_preload, Airflow 3.3); devtools/devstack/env.py sets both.
* CeleryExecutor: the worker imports them before it forks its pool (Celery's `imports`, through
  [celery] celery_config_options = include.core.celery_config.CELERY_CONFIG).

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
    "pydantic_settings", "phonenumbers", "slack_sdk", "httpx", "sqlalchemy", "psycopg2", "uvloop",
)
