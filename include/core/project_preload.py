"""Imported by a Celery worker before it forks its pool (Celery's `imports`, include/core/celery_config.py): preloads
the project's task-path modules, with the guard that drops them in a forked process once a file changed
(include/core/task_preload.py)."""
from __future__ import annotations

from include.core import task_preload

task_preload.preload_project()
