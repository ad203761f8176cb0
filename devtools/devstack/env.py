"""Environment for Airflow processes and the sandbox, shared by `make run` and the test suite.

Connections and variables travel as AIRFLOW_CONN_* / AIRFLOW_VAR_* environment variables; the
secrets they carry (sandbox token, app secret, JWT and Fernet keys) are generated once per data
folder and kept in a git-ignored file, never in code.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from devtools.devstack.pg import pg_bin_dir

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = ROOT / ".data"
WABA_ID = "200000000000001"
API_VERSION = "v21.0"
# The sandbox's research-mode recipients that are always delivered: the dev stack's and the tests' canary list.
# Production has no default (include/core/config.py CANARY_PHONES).
SANDBOX_CANARY_PHONES = "+919900000001,+919900000011,+919900000021,+919900000031"


# Airflow signs its API JWTs with HS512; PyJWT warns (InsecureKeyLengthWarning) below a 64-byte key.
MIN_JWT_SECRET_BYTES = 64


def new_jwt_secret() -> str:
    """A JWT signing secret of 86 URL-safe characters (64 random bytes), above HS512's 64-byte minimum."""
    return secrets.token_urlsafe(MIN_JWT_SECRET_BYTES)


def _write_secrets(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)


OPS_BOT_USER = "ops_bot"


def write_service_user_password(passwords_file: Path, password: str) -> None:
    """Put the run-notes service user's password into the SimpleAuthManager's passwords file before the
    api-server starts (it generates the others, admin's included, and keeps ours)."""
    passwords_file.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(passwords_file.read_text() or "{}") if passwords_file.exists() else {}
    if current.get(OPS_BOT_USER) != password:
        current[OPS_BOT_USER] = password
        passwords_file.write_text(json.dumps(current))
        passwords_file.chmod(0o600)


def load_or_create_secrets(data_dir: Path) -> dict[str, str]:
    """The stack's secrets, generated once into `secrets.json`. A stored JWT secret shorter than 64 bytes (older
    data folders had 43 characters) is replaced and the file rewritten: sessions signed with it end once."""
    path = data_dir / "secrets.json"
    if path.exists():
        values = json.loads(path.read_text())
        changed = False
        if len(str(values.get("jwt_secret") or "").encode()) < MIN_JWT_SECRET_BYTES:
            values["jwt_secret"] = new_jwt_secret()
            changed = True
        if not values.get("ops_bot_password"):  # data folders from before run notes
            values["ops_bot_password"] = secrets.token_urlsafe(18)
            changed = True
        if changed:
            _write_secrets(path, values)
        return values
    values = {
        "whatsapp_token": "sandbox-" + secrets.token_urlsafe(24),
        "app_secret": secrets.token_hex(16),
        "verify_token": secrets.token_urlsafe(12),
        "jwt_secret": new_jwt_secret(),
        "api_secret_key": secrets.token_urlsafe(32),
        "fernet_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "ops_bot_password": secrets.token_urlsafe(18),
    }
    _write_secrets(path, values)
    return values


@dataclass
class StackSettings:
    data_dir: Path
    app_db_conn_json: str          # AIRFLOW_CONN_APP_DB
    airflow_db_url: str            # metadata DB (SQLAlchemy URL, psycopg2)
    sandbox_url: str               # http://127.0.0.1:PORT
    api_port: int = 8080
    # Slots for the 06:00 senders (five in the demo world) plus what starts with them: 06:00 is also a slot of the
    # 5-minute DAGs (advisor_delay_notices, incident_escalation; bench.fanout_dag saw five of their tasks inside one
    # run). With 6, a sender started 3.5 s after its peers in one benchmark run, most likely waiting for a slot.
    # Idle workers cost memory, not CPU; 32 would pre-fork 32.
    parallelism: int = 8
    secrets: dict[str, str] | None = None

    @property
    def api_base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def whatsapp_conn_json(self) -> str:
        s = self.secrets or {}
        return json.dumps({"conn_type": "http", "host": self.sandbox_url, "password": s.get("whatsapp_token", ""),
                           "extra": {"waba_id": WABA_ID, "app_secret": s.get("app_secret", ""),
                                     "api_version": API_VERSION, "verify_token": s.get("verify_token", "")}})

    def slack_conn_json(self, channel: str = "alerts") -> str:
        return json.dumps({"conn_type": "slackwebhook", "password": f"{self.sandbox_url}/slack/webhook/{channel}"})

    def airflow_env(self) -> dict[str, str]:
        s = self.secrets or {}
        home = self.data_dir / "airflow"
        env = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # Airflow's LocalExecutor, forking its workers after importing what every task imports
            # (include/core/preloading_executor.py); celery_stack.airflow_env swaps in CeleryExecutor.
            "AIRFLOW__CORE__EXECUTOR": "include.core.preloading_executor.PreloadingLocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Kolkata",
            "AIRFLOW__CORE__FERNET_KEY": s.get("fernet_key", ""),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_base_url}/execution/",
            # ops_bot: the service user tasks write run notes with (include/core/run_notes.py); role "user" may
            # edit DAG runs, nothing more.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{OPS_BOT_USER}:user",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "simple_auth_manager_passwords.json"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.airflow_db_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "3",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.api_base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": s.get("api_secret_key", ""),
            "AIRFLOW__API_AUTH__JWT_SECRET": s.get("jwt_secret", ""),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            # Orchestration latency (issue 19 §4): a scheduler loop that found nothing to do sleeps this long, and
            # every hand-off of a run (queued -> running, upstream done -> downstream queued, last task -> run
            # done) waits for the next loop. Airflow's 1 s default costs ~0.5 s per hand-off, 3-4 s per fan-out
            # run; 0.25 s costs a few % of one core while idle (bench/fanout_dag.py measures both).
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": os.environ.get(
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME", "0.25"),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # Re-parse an unchanged DAG file every 5 min instead of every 30 s: re-parsing the 22 files took ~4.6 s
            # of CPU per 20 s fan-out run (bench/fanout_dag.py cpu_s) on the 2 cores the senders use. A DAG file
            # that changed is still re-parsed at the next bundle refresh ([dag_processor] file_parsing_sort_mode
            # modified_time re-queues files modified since their last parse).
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": os.environ.get(
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL", "300"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.data_dir / "logs" / "airflow"),
            "AIRFLOW_CONN_APP_DB": self.app_db_conn_json,
            "AIRFLOW_CONN_AIRFLOW_API": json.dumps({"conn_type": "http", "host": self.api_base_url,
                                                    "login": OPS_BOT_USER,
                                                    "password": s.get("ops_bot_password", "")}),
            "AIRFLOW_CONN_WHATSAPP_CLOUD": self.whatsapp_conn_json(),
            "AIRFLOW_CONN_SLACK_ALERTS": self.slack_conn_json(),
            "AIRFLOW_CONN_SLACK_APPROVERS": self.slack_conn_json("approvers"),
            # PagerDuty's Events API v2 at the sandbox (production: host empty = https://events.pagerduty.com);
            # routing keys come from the on-call roster (oncall_roles), one per role.
            "AIRFLOW_CONN_PAGERDUTY_EVENTS": json.dumps({"conn_type": "pagerduty_events", "host": self.sandbox_url}),
            "FA_DATA_DIR": str(self.data_dir),
            "FA_CANARY_PHONES": SANDBOX_CANARY_PHONES,
            "FA_PG_BIN_DIR": pg_bin_dir(),
            "FA_UI_BASE_URL": self.api_base_url,
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
            "PYTHONWARNINGS": "ignore::UserWarning:graphviz",
        }
        return env

    def sandbox_env(self, callback_url: str = "") -> dict[str, str]:
        s = self.secrets or {}
        return {
            "SANDBOX_ACCESS_TOKEN": s.get("whatsapp_token", ""),
            "SANDBOX_APP_SECRET": s.get("app_secret", ""),
            "SANDBOX_WABA_ID": WABA_ID,
            "SANDBOX_CALLBACK_URL": callback_url,
            # Status notifications due together go out up to 100 per POST, as Meta aggregates them (up to 1,000)
            # under volume; the suite's sandboxes keep 1, the receiver's worst case.
            "SANDBOX_WEBHOOK_BATCH_MAX": "100",
            "PYTHONPATH": str(ROOT),
        }
