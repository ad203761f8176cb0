"""`make run` / `make stop` / `make status`: the whole local system as one supervised process tree.

run:   embedded PostgreSQL (unless APP_DB_URL names an external server), migrations, the demo
       world, the sandbox, then Airflow's api-server, scheduler, dag-processor and triggerer, and the WhatsApp
       webhook receiver as its own process (`receiver`, uvicorn, the production layout; the sandbox's status
       webhooks go to it, while the api-server keeps serving the same app at /whatsapp/webhook).
       Every child runs in its own process group; Ctrl-C, SIGTERM or `make stop` ends them all.
       --executor celery (`make run EXECUTOR=celery`): also a Redis broker and two Celery workers (queues
       `delivery` and `default`, see celery_stack.py); a worker that dies is restarted by the supervisor.
stop:  signals the supervisor (or, if it died, the recorded process groups) and stops PostgreSQL.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from devtools.devstack.env import (
    DEFAULT_DATA_DIR, ROOT, StackSettings, load_or_create_secrets, write_service_user_password,
)
from devtools.devstack.pg import EmbeddedPostgres
from include.core.config import pool_definitions

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# The receiver's production entry point (include/whatsapp/webhook_receiver.standalone_app): one uvicorn worker on
# loopback, with the Airflow environment (whatsapp_cloud and app_db connections, JWT secret for /webhook/stats).
RECEIVER_APP = "include.whatsapp.webhook_receiver:standalone_app"


def receiver_command(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", RECEIVER_APP, "--no-proxy-headers", "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log"]


def _say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


class Stack:
    def __init__(self, data_dir: Path, api_port: int, sandbox_port: int, executor: str = "local",
                 receiver_port: int | None = None):
        self.data_dir = data_dir
        self.receiver_port = receiver_port or _free_port()  # RECEIVER_PORT, else any free port (in the banner)
        self.executor = executor
        self.restartable: dict[str, tuple[list[str], dict[str, str]]] = {}  # name -> (cmd, env): Celery workers
        self.restarts: list[float] = []
        self.state_extra: dict = {}
        self.api_port = api_port
        self.sandbox_port = sandbox_port
        self.run_dir = data_dir / "run"
        self.log_dir = data_dir / "logs"
        self.state_file = self.run_dir / "stack.json"
        self.children: dict[str, subprocess.Popen] = {}
        self.pg: EmbeddedPostgres | None = None
        self._stopping = False

    # -- databases -----------------------------------------------------------------------
    def databases(self) -> tuple[str, str, str]:
        """(app SQLAlchemy URL, AIRFLOW_CONN_APP_DB json, Airflow metadata URL)."""
        external = os.environ.get("APP_DB_URL")
        if external:
            import sqlalchemy as sa

            from include.core.db import normalise_url

            app_url = normalise_url(external)
            meta = os.environ.get("AIRFLOW_DB_URL") or app_url.set(
                drivername="postgresql+psycopg2", database="airflow").render_as_string(hide_password=False)
            conn = json.dumps({"conn_type": "postgres", "host": app_url.host or app_url.query.get("host"),
                               "login": app_url.username, "password": app_url.password,
                               "schema": app_url.database, "port": app_url.port or 5432})
            _say(f"using external PostgreSQL for the app DB: {app_url.render_as_string(hide_password=True)}")
            with sa.create_engine(app_url, isolation_level="AUTOCOMMIT").connect():
                pass
            return app_url.render_as_string(hide_password=False), conn, meta
        self.pg = EmbeddedPostgres(self.data_dir / "pg").start()
        for name in ("app", "airflow"):
            if self.pg.create_database(name):
                _say(f"created database {name}")
        _say(f"embedded PostgreSQL running (socket {self.pg.socket_dir})")
        return self.pg.url("app"), self.pg.connection_json("app"), self.pg.url("airflow", driver="psycopg2")

    # -- process management ------------------------------------------------------------------
    def spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
        self.children[name] = proc
        self._write_state()
        _say(f"started {name} (pid {proc.pid}, log {self.log_dir / (name + '.log')})")
        return proc

    def _write_state(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({
            "supervisor": os.getpid(), "children": {n: p.pid for n, p in self.children.items()},
            "pgdata": str(self.pg.data_dir) if self.pg else None, **self.state_extra}))

    def shutdown(self, code: int = 0) -> None:
        if self._stopping:
            return
        self._stopping = True
        _say("stopping...")
        # Task processes run in process groups of their own (Airflow's task supervisor setpgid()s them): remember
        # every descendant now, while the tree is intact, and kill whatever of it outlives its group below.
        descendants = _descendants(self.children.values())
        for proc in reversed(list(self.children.values())):
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 25
        for name, proc in self.children.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _say(f"{name} did not stop in time; killing its process group")
            _signal_group(proc.pid, signal.SIGKILL)  # also reaps grandchildren left in the group
        _kill_survivors(descendants)
        if self.pg is not None:
            self.pg.stop()
            if self.pg.is_running():
                _say(f"PostgreSQL ({self.pg.data_dir}) is still running after pg_ctl stop; see {self.pg.log_file}")
                code = code or 1
            else:
                _say("PostgreSQL stopped")
        self.state_file.unlink(missing_ok=True)
        _say("all processes stopped")
        sys.exit(code)

    # -- Celery (EXECUTOR=celery) --------------------------------------------------------------------
    def _start_broker(self, meta_url: str) -> dict[str, str]:
        """Start the Redis broker as a supervised child; returns the Celery part of the Airflow environment."""
        from devtools.devstack import broker, celery_stack

        port = int(os.environ.get("BROKER_PORT") or _free_port())
        if not _port_free(port):
            sys.exit(f"port {port} on 127.0.0.1 is in use; free it or set BROKER_PORT")
        password = broker.load_or_create_password(self.data_dir)
        url = broker.broker_url(port, password)
        proc = self.spawn("broker", broker.server_command(port, password, self.run_dir / "broker"), {})
        if not broker.wait_ready(url, 20, proc):
            _say("the Redis broker did not answer PING; see .data/logs/broker.log")
            self.shutdown(1)
        self.state_extra.update(executor="celery", broker_port=port)
        self._write_state()
        _say(f"Redis broker ready on 127.0.0.1:{port}")
        return celery_stack.airflow_env(url, meta_url)

    def _start_workers(self, airflow: str, af_env: dict[str, str], concurrency: int) -> None:
        from devtools.devstack import celery_stack

        for worker in celery_stack.WORKERS:
            cmd = celery_stack.worker_command(airflow, worker, concurrency, self.run_dir)
            self.restartable[worker.name] = (cmd, af_env)
            self.spawn(worker.name, cmd, af_env)
        url = af_env["AIRFLOW__CELERY__BROKER_URL"]
        deadline = time.monotonic() + 120
        want = {f"{w.queue}@{socket.gethostname()}" for w in celery_stack.WORKERS}
        while time.monotonic() < deadline:
            if want <= set(celery_stack.ping_workers(url, timeout_s=1.0)):
                _say(f"Celery workers answering: {', '.join(sorted(want))}")
                return
            for worker in celery_stack.WORKERS:
                if self.children[worker.name].poll() is not None:
                    _say(f"{worker.name} exited during start-up; see {self.log_dir / (worker.name + '.log')}")
                    self.shutdown(1)
        _say("the Celery workers did not answer a ping within 120 s; see .data/logs/celery-*.log")
        self.shutdown(1)

    def _may_restart(self) -> bool:
        """At most 5 worker restarts a minute: past that something is broken and the stack stops loudly."""
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < 60] + [now]
        return not self._stopping and len(self.restarts) <= 5

    # -- main ---------------------------------------------------------------------------------
    def run(self, advisors: int) -> None:
        if self.state_file.exists():
            prev = json.loads(self.state_file.read_text())
            if _alive(prev.get("supervisor")):
                sys.exit(f"a stack is already running (supervisor pid {prev['supervisor']}); use `make stop`")
        for port in (self.api_port, self.sandbox_port, self.receiver_port):
            if not _port_free(port):
                sys.exit(f"port {port} on 127.0.0.1 is in use; free it or set AIRFLOW_PORT / SANDBOX_PORT / "
                         "RECEIVER_PORT")
        signal.signal(signal.SIGINT, lambda *_: self.shutdown(0))
        signal.signal(signal.SIGTERM, lambda *_: self.shutdown(0))
        secrets_ = load_or_create_secrets(self.data_dir)
        app_url, app_conn, meta_url = self.databases()
        self._write_state()

        from include.core import db

        from devtools import demo_world

        engine = db.get_engine(app_url)
        applied = db.migrate(engine)
        _say(f"migrations applied: {applied or 'none pending'}")
        result = demo_world.seed_world(engine, advisors=advisors)
        _say(f"demo world: {result.import_report.accepted} advisors loaded, "
             f"{len(result.import_report.rejected)} rejected rows (see import_rejections)")
        engine.dispose()

        sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        settings = StackSettings(self.data_dir, app_conn, meta_url, sandbox_url, api_port=self.api_port,
                                 secrets=secrets_)
        af_env = settings.airflow_env()
        # The AI compliance review (include/content/ai_review.py) talks to the sandbox's OpenAI-compatible endpoint;
        # production points `ai_compliance` at its provider (host = base URL, password = API key).
        af_env["AIRFLOW_CONN_AI_COMPLIANCE"] = json.dumps({"conn_type": "http", "host": f"{sandbox_url}/v1",
                                                          "password": "sandbox-ai-key"})
        if self.executor == "celery":
            af_env.update(self._start_broker(meta_url))
        # Meta's status webhooks (the sandbox's) go to the standalone receiver, as in production; the api-server's
        # /whatsapp/webhook serves the same app (fallback, and the URL behind a single reverse-proxy rule).
        receiver_url = f"http://127.0.0.1:{self.receiver_port}/webhook"
        callback = os.environ.get("SANDBOX_CALLBACK_URL", receiver_url)
        # Advisor delay-notice emails (include/advisor_notices/email.py) go through Airflow's SMTP connection
        # `advisor_email` to the sandbox's SMTP sink; production points it at the real relay.
        smtp_port = int(os.environ.get("SANDBOX_SMTP_PORT") or _free_port())
        af_env["AIRFLOW_CONN_ADVISOR_EMAIL"] = json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
            "extra": {"from_email": "notices@advisor-content.example.in", "disable_ssl": True, "disable_tls": True,
                      "retry_limit": 0, "timeout": 10}})
        sb = self.spawn("sandbox", [sys.executable, "-m", "devtools.sandbox.server", "--port", str(self.sandbox_port),
                                    "--smtp-port", str(smtp_port)], settings.sandbox_env(callback))
        if not _wait_http(f"{sandbox_url}/_sandbox/health", 30, sb):
            _say("sandbox did not become healthy; see its log")
            self.shutdown(1)

        airflow = str(Path(sys.executable).with_name("airflow"))
        _say("migrating the Airflow metadata database...")
        mig = subprocess.run([airflow, "db", "migrate"], env={**os.environ, **af_env}, cwd=ROOT,
                             capture_output=True, text=True)
        if mig.returncode != 0:
            _say(f"airflow db migrate failed:\n{mig.stdout[-3000:]}\n{mig.stderr[-3000:]}")
            self.shutdown(1)
        pools = self.data_dir / "run" / "pools.json"
        pools.parent.mkdir(parents=True, exist_ok=True)
        pools.write_text(json.dumps(pool_definitions(settings.parallelism)))
        imp = subprocess.run([airflow, "pools", "import", str(pools)], env={**os.environ, **af_env}, cwd=ROOT,
                             capture_output=True, text=True)
        if imp.returncode != 0:
            _say(f"airflow pools import failed:\n{imp.stdout[-2000:]}\n{imp.stderr[-2000:]}")
            self.shutdown(1)
        write_service_user_password(Path(af_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]),
                                    (settings.secrets or {}).get("ops_bot_password", ""))
        self.spawn("receiver", receiver_command(self.receiver_port), af_env)
        for comp in AIRFLOW_COMPONENTS:
            self.spawn(comp, [airflow, comp], af_env)
        health = f"{settings.api_base_url}/api/v2/monitor/health"
        if not _wait_http(health, 120, self.children["api-server"]):
            _say("the Airflow api-server did not become healthy; see .data/logs/api-server.log")
            self.shutdown(1)
        handshake = (f"{receiver_url}?hub.mode=subscribe&hub.challenge=ready&hub.verify_token="
                     f"{urllib.parse.quote(secrets_.get('verify_token', ''))}")
        if not _wait_http(handshake, 60, self.children["receiver"]):
            _say("the webhook receiver did not answer Meta's handshake; see .data/logs/receiver.log")
            self.shutdown(1)
        if self.executor == "celery":
            self._start_workers(airflow, af_env, settings.parallelism)
        pw_file = Path(af_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
        password = json.loads(pw_file.read_text()).get("admin", "?") if pw_file.exists() else "(see api-server log)"
        _say("=" * 70)
        _say(f"Airflow UI:      {settings.api_base_url}   login: admin / {password}")
        _say(f"Health:          {health}")
        _say(f"Webhooks:        {receiver_url}   (receiver process; the api-server also serves /whatsapp/webhook)")
        _say(f"Sandbox Slack:   {sandbox_url}/slack")
        _say(f"Sandbox admin:   {sandbox_url}/_sandbox/health")
        _say(f"Sandbox mail:    {sandbox_url}/_sandbox/mail   (SMTP sink on 127.0.0.1:{smtp_port})")
        if self.executor == "celery":
            _say(f"Celery broker:   redis://127.0.0.1:{self.state_extra['broker_port']}/0 (password in "
                 f"{self.data_dir / 'broker_password'}); workers: `make status`")
        _say("Stop with Ctrl-C or `make stop`.")
        _say("=" * 70)
        while True:
            for name, proc in self.children.items():
                if proc.poll() is not None:
                    _say(f"{name} exited with code {proc.returncode}; see {self.log_dir / (name + '.log')}")
                    if name in self.restartable and self._may_restart():
                        self.spawn(name, *self.restartable[name])  # a dead Celery worker comes back
                        break
                    self.shutdown(1)
            time.sleep(1)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(procs) -> list:
    import psutil

    found = []
    for proc in procs:
        try:
            found.extend(psutil.Process(proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    return found


def _kill_survivors(procs) -> None:
    import psutil

    for proc in procs:
        try:
            if proc.is_running():
                proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5)


def stop(data_dir: Path) -> int:
    state_file = data_dir / "run" / "stack.json"
    if not state_file.exists():
        print("[stack] nothing is running")
        return 0
    state = json.loads(state_file.read_text())
    sup = state.get("supervisor")
    if _alive(sup):
        os.kill(sup, signal.SIGTERM)
        deadline = time.monotonic() + 40
        while _alive(sup) and time.monotonic() < deadline:
            time.sleep(0.3)
    if _alive(sup):
        os.kill(sup, signal.SIGKILL)
    # Supervisor gone (crashed or killed): clean up whatever it left.
    for pid in state.get("children", {}).values():
        _signal_group(pid, signal.SIGTERM)
    time.sleep(1)
    for pid in state.get("children", {}).values():
        _signal_group(pid, signal.SIGKILL)
    if state.get("pgdata"):
        EmbeddedPostgres(Path(state["pgdata"])).stop()
    state_file.unlink(missing_ok=True)
    print("[stack] stopped")
    return 0


def status(data_dir: Path) -> int:
    state_file = data_dir / "run" / "stack.json"
    if not state_file.exists():
        print("[stack] not running")
        return 1
    state = json.loads(state_file.read_text())
    print(f"supervisor {state['supervisor']}: {'alive' if _alive(state['supervisor']) else 'dead'}")
    for name, pid in state.get("children", {}).items():
        print(f"  {name:14s} pid {pid}: {'alive' if _alive(pid) else 'dead'}")
    if state.get("executor") == "celery":
        _celery_status(data_dir, state)
    return 0


def _celery_status(data_dir: Path, state: dict) -> None:
    """The workers as the broker sees them: who answers a ping, which queues each consumes, what is waiting."""
    from devtools.devstack import broker, celery_stack

    url = broker.broker_url(state["broker_port"], broker.load_or_create_password(data_dir))
    if not broker.ping(url):
        print(f"broker 127.0.0.1:{state['broker_port']}: not answering")
        return
    depths = broker.queue_depths(url, celery_stack.QUEUES)
    print(f"broker 127.0.0.1:{state['broker_port']}: up; waiting messages "
          + ", ".join(f"{q}={n}" for q, n in depths.items()))
    pongs, queues = celery_stack.ping_workers(url), celery_stack.active_queues(url)
    for node in sorted(set(pongs) | set(queues)):
        print(f"  worker {node:30s} {pongs.get(node, 'no answer'):5s} queues: {', '.join(queues.get(node, []))}")
    if not pongs:
        print("  no Celery worker answered a ping")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "stop", "status"))
    parser.add_argument("--advisors", type=int, default=int(os.environ.get("ADVISORS", "2000")))
    parser.add_argument("--executor", choices=("local", "celery"), default=os.environ.get("EXECUTOR") or "local",
                        help="LocalExecutor (default) or CeleryExecutor with a Redis broker and two workers")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("FA_DATA_DIR", DEFAULT_DATA_DIR)))
    args = parser.parse_args(argv)
    data_dir = args.data_dir.resolve()
    if args.command == "stop":
        sys.exit(stop(data_dir))
    if args.command == "status":
        sys.exit(status(data_dir))
    if args.advisors < 1:
        sys.exit("--advisors must be at least 1")
    Stack(data_dir, int(os.environ.get("AIRFLOW_PORT", "8080")), int(os.environ.get("SANDBOX_PORT", "8090")),
          args.executor, int(os.environ.get("RECEIVER_PORT") or 0) or None).run(args.advisors)


if __name__ == "__main__":
    main()
