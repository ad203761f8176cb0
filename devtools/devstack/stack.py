"""`make run` / `make stop` / `make status`: the whole local system as one supervised process tree.

run:   embedded PostgreSQL (unless APP_DB_URL names an external server), migrations, the demo
       world, the sandbox, then Airflow's api-server, scheduler, dag-processor and triggerer.
       Every child runs in its own process group; Ctrl-C, SIGTERM or `make stop` ends them all.
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
import urllib.request
from pathlib import Path

from devtools.devstack.env import (
    DEFAULT_DATA_DIR, ROOT, StackSettings, load_or_create_secrets, write_service_user_password,
)
from devtools.devstack.pg import EmbeddedPostgres
from include.core.config import pool_definitions

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


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
    def __init__(self, data_dir: Path, api_port: int, sandbox_port: int):
        self.data_dir = data_dir
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
            "pgdata": str(self.pg.data_dir) if self.pg else None}))

    def shutdown(self, code: int = 0) -> None:
        if self._stopping:
            return
        self._stopping = True
        _say("stopping...")
        for proc in reversed(list(self.children.values())):
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 25
        for name, proc in self.children.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _say(f"{name} did not stop in time; killing its process group")
            _signal_group(proc.pid, signal.SIGKILL)  # also reaps grandchildren left in the group
        if self.pg is not None:
            self.pg.stop()
            _say("PostgreSQL stopped")
        self.state_file.unlink(missing_ok=True)
        _say("all processes stopped")
        sys.exit(code)

    # -- main ---------------------------------------------------------------------------------
    def run(self, advisors: int) -> None:
        if self.state_file.exists():
            prev = json.loads(self.state_file.read_text())
            if _alive(prev.get("supervisor")):
                sys.exit(f"a stack is already running (supervisor pid {prev['supervisor']}); use `make stop`")
        for port in (self.api_port, self.sandbox_port):
            if not _port_free(port):
                sys.exit(f"port {port} on 127.0.0.1 is in use; free it or set AIRFLOW_PORT / SANDBOX_PORT")
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
        callback = os.environ.get("SANDBOX_CALLBACK_URL", f"{settings.api_base_url}/whatsapp/webhook")
        sb = self.spawn("sandbox", [sys.executable, "-m", "devtools.sandbox.server", "--port", str(self.sandbox_port)],
                        settings.sandbox_env(callback))
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
        for comp in AIRFLOW_COMPONENTS:
            self.spawn(comp, [airflow, comp], af_env)
        health = f"{settings.api_base_url}/api/v2/monitor/health"
        if not _wait_http(health, 120, self.children["api-server"]):
            _say("the Airflow api-server did not become healthy; see .data/logs/api-server.log")
            self.shutdown(1)
        pw_file = Path(af_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
        password = json.loads(pw_file.read_text()).get("admin", "?") if pw_file.exists() else "(see api-server log)"
        _say("=" * 70)
        _say(f"Airflow UI:      {settings.api_base_url}   login: admin / {password}")
        _say(f"Health:          {health}")
        _say(f"Sandbox Slack:   {sandbox_url}/slack")
        _say(f"Sandbox admin:   {sandbox_url}/_sandbox/health")
        _say("Stop with Ctrl-C or `make stop`.")
        _say("=" * 70)
        while True:
            for name, proc in self.children.items():
                if proc.poll() is not None:
                    _say(f"{name} exited with code {proc.returncode}; see {self.log_dir / (name + '.log')}")
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
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "stop", "status"))
    parser.add_argument("--advisors", type=int, default=int(os.environ.get("ADVISORS", "2000")))
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("FA_DATA_DIR", DEFAULT_DATA_DIR)))
    args = parser.parse_args(argv)
    data_dir = args.data_dir.resolve()
    if args.command == "stop":
        sys.exit(stop(data_dir))
    if args.command == "status":
        sys.exit(status(data_dir))
    if args.advisors < 1:
        sys.exit("--advisors must be at least 1")
    Stack(data_dir, int(os.environ.get("AIRFLOW_PORT", "8080")), int(os.environ.get("SANDBOX_PORT", "8090"))).run(
        args.advisors)


if __name__ == "__main__":
    main()
