"""Test infrastructure: a real embedded PostgreSQL per session, one fresh app database per test
(cloned from a migrated template), and the sandbox running as a real server on a loopback port."""
from __future__ import annotations

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


class SandboxProcess:
    """The sandbox as a separate process, exactly as `make sandbox` runs it."""

    def __init__(self, log_dir: Path, limits: bool = True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SANDBOX_ACCESS_TOKEN": TEST_TOKEN,
               "SANDBOX_APP_SECRET": TEST_APP_SECRET, "SANDBOX_LIMITS": "on" if limits else "off"}
        self.log = open(log_dir / f"sandbox-{self.port}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "include.sandbox.server", "--port", str(self.port)],
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

    def stop(self) -> None:
        self.admin.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
