"""Session-wide fixtures. The embedded PostgreSQL starts before Airflow is imported, because
Airflow reads its metadata-DB URL from the environment at import time."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devtools.devstack.env import SANDBOX_CANARY_PHONES  # noqa: E402
from devtools.devstack.pg import pg_bin_dir  # noqa: E402

# Before include.core.config is imported: the canary goes to the sandbox's research numbers (production has no default).
os.environ.setdefault("FA_CANARY_PHONES", SANDBOX_CANARY_PHONES)
os.environ.setdefault("FA_PG_BIN_DIR", pg_bin_dir())
# dag.test() cannot finish a run of a DAG that has a Deadline Alert (Airflow 3.3.2: on success it looks the alerts
# up by id and passes their unserialized dicts, a psycopg "can't adapt type 'dict'"); the scheduler serializes them
# first. Tests built on dag.test() run without them; tests/dags checks they are attached and serialize, and
# tests/e2e/test_stack.py sees one fire through the real scheduler and triggerer (its stack gets no FA_ settings).
os.environ.setdefault("FA_DEADLINE_ALERTS", "false")

from devtools.devstack.pg import EmbeddedPostgres  # noqa: E402
from tests.support import TEST_APP_SECRET, TEST_TOKEN, TEST_VERIFY_TOKEN, SandboxProcess  # noqa: E402

_STATE: dict = {}


def pytest_configure(config):
    tmp = Path(tempfile.mkdtemp(prefix="fa-tests-"))
    pg = EmbeddedPostgres(tmp / "pg", durable=False).start()
    pg.create_database("airflow_meta")
    _STATE.update(tmp=tmp, pg=pg)
    home = tmp / "airflow"
    home.mkdir()
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url("airflow_meta", driver="psycopg2"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp / "logs"),
        "FA_DATA_DIR": str(tmp / "data"),
        "PYTHONWARNINGS": "ignore",
    })


def pytest_unconfigure(config):
    if "airflow.settings" in sys.modules:  # close Airflow's pooled connections before the server goes
        try:
            sys.modules["airflow.settings"].dispose_orm()
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass
    pg = _STATE.get("pg")
    if pg is not None:
        pg.destroy()
    if _STATE.get("tmp"):
        shutil.rmtree(_STATE["tmp"], ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> EmbeddedPostgres:
    return _STATE["pg"]


@pytest.fixture(scope="session")
def app_template(pg_server) -> str:
    """A migrated, empty app database used as the template for per-test databases."""
    from include.core import db

    name = "app_template"
    pg_server.drop_database(name)
    pg_server.create_database(name)
    engine = db.get_engine(pg_server.url(name))
    db.migrate(engine)
    engine.dispose()
    db.dispose_engines()
    return name


@pytest.fixture
def app_db(pg_server, app_template, monkeypatch):
    """A fresh, migrated app database for one test; also wired as the `app_db` Airflow connection."""
    import psycopg

    from include.core import db

    name = f"app_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(host=str(pg_server.socket_dir), port=5432, user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{app_template}"')
    monkeypatch.setenv("AIRFLOW_CONN_APP_DB", pg_server.connection_json(name))
    engine = db.get_engine(pg_server.url(name))
    yield engine
    db.dispose_engines()
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory):
    sb = SandboxProcess(tmp_path_factory.mktemp("sandbox"))
    yield sb
    sb.stop()


@pytest.fixture
def sandbox(sandbox_server, monkeypatch):
    """The sandbox, reset for this test, wired as the `whatsapp_cloud` and `slack_alerts` connections."""
    sandbox_server.reset()
    monkeypatch.setenv("AIRFLOW_CONN_WHATSAPP_CLOUD", json.dumps({
        "conn_type": "http", "host": sandbox_server.url, "password": TEST_TOKEN,
        # Production mode: only what Meta gives (API answers, webhooks); the ledger is the tests' referee.
        "extra": {"waba_id": "200000000000001", "app_secret": TEST_APP_SECRET, "api_version": "v21.0",
                  "verify_token": TEST_VERIFY_TOKEN}}))
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", json.dumps({
        "conn_type": "slackwebhook", "password": f"{sandbox_server.url}/slack/webhook/alerts"}))
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_APPROVERS", json.dumps({
        "conn_type": "slackwebhook", "password": f"{sandbox_server.url}/slack/webhook/approvers"}))
    # The AI compliance review's OpenAI-compatible endpoint (devtools/sandbox/ai_compliance.py).
    monkeypatch.setenv("AIRFLOW_CONN_AI_COMPLIANCE", json.dumps({
        "conn_type": "http", "host": f"{sandbox_server.url}/v1", "password": "test-ai-key"}))
    monkeypatch.setenv("AIRFLOW_CONN_ADVISOR_EMAIL", sandbox_server.smtp_conn_json())  # the SMTP sink
    return sandbox_server


@pytest.fixture
def receiver(app_db, sandbox):
    """The real webhook receiver storing into this test's database, with the sandbox posting its signed
    status webhooks to it: the only evidence of a send's fate that production has."""
    from tests.support import ReceiverServer

    server = ReceiverServer(app_db)
    sandbox.configure(webhooks={"url": server.url})
    yield server
    sandbox.configure(webhooks={"url": ""})
    server.stop()


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata schema (needed by dag.test()), migrated once per session."""
    res = subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
                         capture_output=True, text=True, env=os.environ.copy())
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return True
