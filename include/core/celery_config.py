"""The Celery configuration of this deployment: Airflow's default, plus the modules every task process needs
imported once in the worker before it forks its pool (include/core/task_preload.py).
Set with [celery] celery_config_options = include.core.celery_config.CELERY_CONFIG."""
from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

from include.core.task_preload import MODULES

# The third-party modules first, then the project's (include/core/project_preload.py, guarded against staleness).
CELERY_CONFIG: dict = {**DEFAULT_CELERY_CONFIG, "imports": tuple(DEFAULT_CELERY_CONFIG.get("imports") or ()) + MODULES
                       + ("include.core.project_preload",)}
