"""A run's worst severity and one-line summary become its note in the Airflow UI, written by the summary task
through Airflow's real REST API (the api-server app under uvicorn, SimpleAuthManager, a service user with the
"user" role), never through the metadata database."""
from __future__ import annotations

import json
import httpx
import pytest

from tests.support import load_dag
from tests.world import DAY, make_ready, seed

pytestmark = pytest.mark.e2e

BOT, BOT_PASSWORD, ADMIN_PASSWORD = "ops_bot", "run-notes-bot-password", "run-notes-admin-password"


@pytest.fixture
def api_server(airflow_db, tmp_path, monkeypatch):
    from tests.support import running_api_server

    with running_api_server(tmp_path, monkeypatch, {"admin": ("admin", ADMIN_PASSWORD),
                                                    BOT: ("user", BOT_PASSWORD)}) as url:
        monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(
            {"conn_type": "http", "host": url, "login": BOT, "password": BOT_PASSWORD}))
        yield url


def _note(api: str, dag_id: str, run_id: str) -> str | None:
    token = httpx.post(f"{api}/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
    resp = httpx.get(f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}",
                     headers={"Authorization": f"Bearer {token['access_token']}"})
    resp.raise_for_status()
    return resp.json()["note"]


def test_a_clean_check_and_a_paging_check_read_differently_in_the_ui(api_server, app_db, sandbox, airflow_db):
    from include.delivery.kill_switch import set_sending_paused

    dag = load_dag("pre_delivery_check")
    seed(app_db)
    make_ready(app_db)
    clean = dag.test(run_conf={"business_date": str(DAY), "jitter_window_s": 30})
    assert clean.state == "success"
    assert _note(api_server, "pre_delivery_check", clean.run_id) == (
        f"🟢 ok · Pre-delivery check for {DAY}: all checks passed")

    set_sending_paused(app_db, True, "checking a disclaimer", "alice")
    paging = dag.test(run_conf={"business_date": str(DAY), "jitter_window_s": 30})
    assert paging.state == "success"  # a P1 is not a failed run, and now it does not look like a clean one
    assert _note(api_server, "pre_delivery_check", paging.run_id) == (
        f"🟠 P1 · Pre-delivery check for {DAY}: 1 check(s) need attention")


def test_without_the_connection_the_summary_still_succeeds(app_db, sandbox, airflow_db, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_AIRFLOW_API", raising=False)
    dag = load_dag("pre_delivery_check")
    seed(app_db)
    make_ready(app_db)
    assert dag.test(run_conf={"business_date": str(DAY), "jitter_window_s": 30}).state == "success"
