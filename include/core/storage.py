"""Where files live: renders, reports, backups and archives, all through Airflow's ObjectStoragePath.

By default `file://` under the project's data folder; set FA_DATA_ROOT_URL to any fsspec URL
(s3://bucket/prefix, gs://…) in production.
"""
from __future__ import annotations

from pathlib import Path

from include.core import config

def data_root_url() -> str:
    if config.DATA_ROOT_URL:
        return config.DATA_ROOT_URL.rstrip("/")
    base = Path(config.DATA_DIR or config.PROJECT_ROOT / ".data").resolve() / "objects"
    return f"file://{base}"


def data_root():
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(data_root_url())


def render_root():
    return data_root() / "renders"
