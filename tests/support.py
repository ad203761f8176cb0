"""Test infrastructure: a real embedded PostgreSQL per session, one fresh app database per test
(cloned from a migrated template), and the sandbox running as a real server on a loopback port."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TEST_TOKEN = "test-token-not-secret"
TEST_APP_SECRET = "test-app-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fanout_slot_far_from_now() -> dict[str, str]:
    """A delivery_fanout slot 12 hours from now (IST), for stack tests that trigger their own fan-out run. A stack
    started within minutes after the 06:00 IST slot runs that slot at once (catchup=False still runs the latest
    slot when it is that recent), on time, and its run holds the DAG's single active run (max_active_runs=1) while
    it sends the test's plan: the tests would then depend on the time of day they run at (CI at 00:33 UTC did)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    slot = dt.datetime.now(ZoneInfo("Asia/Kolkata")) + dt.timedelta(hours=12)
    return {"FA_SCHEDULE_DELIVERY_FANOUT": f"{slot.minute} {slot.hour} * * *"}


def start_stack(data_dir, advisors: int, extra_env: dict[str, str] | None = None):
    """`make run`'s supervisor on free loopback ports, with nothing inherited from this shell's Airflow or
    FA_ settings (only `extra_env`). Returns (process, api_port, sandbox_port); stdout is a text pipe."""
    api_port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FA_"))}
    env.update(AIRFLOW_PORT=str(api_port), SANDBOX_PORT=str(sandbox_port), PYTHONPATH=str(ROOT),
               AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
               AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
               AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT=str(free_port()))
    env.update(extra_env or {})
    proc = subprocess.Popen([sys.executable, "-m", "devtools.devstack.stack", "run", "--advisors", str(advisors),
                             "--data-dir", str(data_dir)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return proc, api_port, sandbox_port


def read_stack_banner(proc, timeout_s: float) -> str:
    """The supervisor's output up to its "Stop with Ctrl-C" line (the stack is up), or whatever it printed
    before it exited or the time ran out (the caller checks for the banner)."""
    lines, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Stop with Ctrl-C" in line:
            break
    return "".join(lines)


class SandboxProcess:
    """The sandbox as a separate process, exactly as `make sandbox` runs it."""

    def __init__(self, log_dir: Path, limits: bool = True):
        self.port = free_port()
        self.smtp_port = free_port()  # the SMTP sink (devtools/sandbox/smtp_sink.py)
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SANDBOX_ACCESS_TOKEN": TEST_TOKEN,
               "SANDBOX_APP_SECRET": TEST_APP_SECRET, "SANDBOX_LIMITS": "on" if limits else "off"}
        self.log = open(log_dir / f"sandbox-{self.port}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "devtools.sandbox.server", "--port", str(self.port),
                                      "--smtp-port", str(self.smtp_port)],
                                     env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.admin = httpx.Client(base_url=self.url, timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.admin.get("/_sandbox/health").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"sandbox did not start; see {self.log.name}")

    def reset(self) -> None:
        self.admin.post("/_sandbox/reset").raise_for_status()
        self.admin.post("/_sandbox/config", json={"webhooks": {"url": ""}}).raise_for_status()
        self.admin.delete("/slack/api/posts").raise_for_status()

    def configure(self, **settings) -> None:
        r = self.admin.post("/_sandbox/config", json=settings)
        r.raise_for_status()

    def faults(self, **faults) -> None:
        self.admin.post("/_sandbox/faults", json=faults).raise_for_status()

    def slack_posts(self) -> list[dict]:
        return self.admin.get("/slack/api/posts").json()["posts"]

    def ledger_stats(self) -> dict:
        return self.admin.get("/_sandbox/ledger/stats").json()

    def ledger(self, **params) -> list[dict]:
        return self.admin.get("/_sandbox/ledger", params=params).json()["data"]

    def pagerduty_events(self) -> list[dict]:
        """Every request the sandbox's PagerDuty Events API received, in order, with its HTTP status and outcome
        (incident_opened, deduplicated, acknowledged, resolved, dropped, invalid, throttled, server_error)."""
        return self.admin.get("/_sandbox/pagerduty/events").json()["events"]

    def mail(self, to: str | None = None) -> list[dict]:
        """Every email the SMTP sink received since the last reset (optionally only those to `to`), in order."""
        return self.admin.get("/_sandbox/mail", params={"to": to} if to else None).json()["messages"]

    def smtp_conn_json(self) -> str:
        """An Airflow SMTP connection (the provider's SmtpHook) to the sink: plain SMTP on loopback, no retries
        inside the hook (the advisor-notice outbox retries)."""
        import json

        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.smtp_port,
                           "extra": {"from_email": "notices@advisor-content.example.in", "disable_ssl": True,
                                     "disable_tls": True, "retry_limit": 0, "timeout": 10}})

    def wait_webhooks_drained(self, timeout: float = 15.0) -> dict:
        """Poll until the sandbox has no webhook scheduled, queued or in flight (everything due so far was
        delivered or dropped); returns its dispatcher stats. Absence ("no webhook is sent") is then a fact."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.admin.get("/_sandbox/webhooks/stats").json()
            if stats["pending"] == 0 or time.monotonic() >= deadline:
                assert stats["pending"] == 0, f"webhooks still pending after {timeout} s: {stats}"
                return stats
            time.sleep(0.02)

    def stop(self) -> None:
        self.admin.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class WebhookRecorder:
    """A tiny HTTP receiver on a loopback port that records what the sandbox posts to it.
    It can answer errors for the first `fail_first` requests, to exercise the sandbox's retries, answer each
    request only after `answer_after_s`, or hold every answer until `release()`."""

    def __init__(self, fail_first: int = 0, answer_after_s: float = 0.0, hold: bool = False):
        import asyncio
        import threading

        import uvicorn
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        self.received: list[tuple[dict, bytes]] = []
        self.released = threading.Event()
        if not hold:
            self.released.set()
        self.fail_first = fail_first
        self.failed = 0

        async def hook(request):
            body = await request.body()
            if self.failed < self.fail_first:
                self.failed += 1
                return PlainTextResponse("busy", status_code=503)
            self.received.append((dict(request.headers), body))
            if answer_after_s:
                await asyncio.sleep(answer_after_s)  # a slow receiver: the sender's notifications pile up
            while not self.released.is_set():  # held: nothing is answered until release()
                await asyncio.sleep(0.01)
            return PlainTextResponse("ok")

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/hook", hook, methods=["POST"])]),
                                                     host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.05)

    def release(self) -> None:
        self.released.set()

    def payloads(self) -> list[dict]:
        import json

        return [json.loads(b) for _, b in self.received]

    def statuses(self) -> list[dict]:
        return [s for p in self.payloads() for e in p["entry"] for c in e["changes"]
                for s in c["value"].get("statuses", [])]

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)


TEST_VERIFY_TOKEN = "verify-me-please"


class ReceiverServer:
    """The real webhook receiver app (include/whatsapp/webhook_receiver.py) served by uvicorn on a loopback port,
    storing into the given engine's database: what the api-server plugin serves in `make run`."""

    def __init__(self, engine, app_secret: str = TEST_APP_SECRET, verify_token: str = TEST_VERIFY_TOKEN,
                 secrets_factory=None, **app_options):
        """`app_options` go to create_app (ops_auth, max_body_bytes, clock, ...)."""
        import threading

        import uvicorn

        from include.whatsapp.webhook_receiver import ReceiverSecrets, create_app

        self.app = create_app(lambda: engine, secrets_factory or (lambda: ReceiverSecrets(app_secret, verify_token)),
                              **app_options)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhook"
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def stats(self):
        return self.app.state.stats

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)


def wait_until(condition, timeout: float = 10.0, poll_s: float = 0.05, what: str = "condition"):
    """Poll `condition()` until it returns a truthy value (returned) or `timeout` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(poll_s)


def load_dag(dag_id: str):
    """A DAG from its own file, dags/<dag_id>.py (one DAG per file, named after its id)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"dags/{dag_id}.py does not define {dag_id}"
    return dag


@contextlib.contextmanager
def running_api_server(tmp_path, monkeypatch, users: dict[str, tuple[str, str]]):
    """Airflow's real api-server app (`create_app(apps="core")`, plugins included) under uvicorn on a free port,
    with the SimpleAuthManager and `users` = {name: (role, password)}; yields its base URL. The app shares the
    test's metadata database, so runs made by dag.test() are visible through its REST API."""
    import json
    import threading

    import uvicorn

    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({name: password for name, (_, password) in users.items()}))
    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER",
                       "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
                       ",".join(f"{name}:{role}" for name, (role, _) in users.items()))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "test-jwt-secret-" + "x" * 64)  # >= 64 bytes: HS512
    from airflow.api_fastapi.app import create_app, purge_cached_app

    purge_cached_app()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(apps="core"), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=30, what="the api-server started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        purge_cached_app()
