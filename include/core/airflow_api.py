"""Airflow's public REST API as tasks reach it: the one sanctioned way for a task to change Airflow's own state (today
a run's note, include/core/run_notes.py), since tasks never touch the metadata database. The `airflow_api` connection
names the api-server (host) and a service user (login/password; `make run` creates `ops_bot`, role `user`).
Without the connection, `api_session` raises NotConfigured and callers skip what they wanted with one INFO line."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import httpx

from include.core import http_clients

log = logging.getLogger(__name__)

AIRFLOW_API_CONN_ID = "airflow_api"


def connection_exists(conn_id: str) -> bool:
    """Whether an Airflow connection is configured here (read through the Task SDK, never the metadata DB)."""
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
        return True
    except Exception:  # noqa: BLE001 - the SDK raises its own "not found" type
        return False


class NotConfigured(RuntimeError):
    """No `airflow_api` connection here."""


@contextlib.contextmanager
def api_session(timeout_s: float = 10.0) -> Iterator[httpx.Client]:
    """An httpx client on the api-server, logged in as the service user (Bearer JWT)."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(AIRFLOW_API_CONN_ID)
    except Exception as exc:
        raise NotConfigured(f"no {AIRFLOW_API_CONN_ID!r} connection") from exc
    base = (conn.host or "").rstrip("/")
    if conn.port and base.count(":") < 2:
        base = f"{base}:{conn.port}"
    with http_clients.client(base_url=base, timeout=timeout_s) as http:
        login = http.post("/auth/token", json={"username": conn.login, "password": conn.password})
        login.raise_for_status()
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        yield http
