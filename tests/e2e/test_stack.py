"""`make run`'s supervisor: PostgreSQL, sandbox and all four Airflow components come up healthy on
loopback, and Ctrl-C (SIGINT) leaves no process behind. Slow (~1 min): it starts real Airflow."""
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

import psutil
import pytest

from tests.support import read_stack_banner, start_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _ours(data_dir: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            env_home = proc.environ().get("AIRFLOW_HOME", "") if proc.pid != os.getpid() else ""
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if data_dir in cmd or env_home.startswith(data_dir):
            found.append(proc)
    return found


def test_make_run_comes_up_healthy_and_ctrl_c_leaves_no_orphans(tmp_path):
    data_dir = str(tmp_path / "data")
    proc, api_port, sandbox_port = start_stack(data_dir, advisors=60)
    out = ""
    try:
        out = read_stack_banner(proc, timeout_s=150)
        assert "Airflow UI:" in out and "login: admin / " in out, out
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=10) as r:
            health = json.load(r)
        for component in ("metadatabase", "scheduler", "dag_processor", "triggerer"):
            assert health[component]["status"] == "healthy", health
        # The webhook receiver is served by the api-server plugin, and the sandbox's callback reaches it:
        # Meta's handshake, then an inbound STOP that lands on the do-not-contact list.
        token = json.loads((tmp_path / "data" / "secrets.json").read_text())["verify_token"]
        hook = f"http://127.0.0.1:{api_port}/whatsapp/webhook"
        with urllib.request.urlopen(f"{hook}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=42",
                                    timeout=10) as r:
            assert r.read() == b"42"
        req = urllib.request.Request(f"http://127.0.0.1:{sandbox_port}/_sandbox/inbound", method="POST",
                                     data=json.dumps({"from": "+919812340000", "text": "STOP"}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        # The receiver's stats are an operational route: they need an Airflow login (Meta's routes do not).
        try:
            urllib.request.urlopen(f"{hook}/stats", timeout=10)
            raise AssertionError("webhook stats answered without an Airflow login")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401, exc.code
        password = re.search(r"login: admin / (\S+)", out).group(1)
        login = urllib.request.Request(f"http://127.0.0.1:{api_port}/auth/token", method="POST",
                                       data=json.dumps({"username": "admin", "password": password}).encode(),
                                       headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(login, timeout=10) as r:
            token = json.load(r)["access_token"]
        authed = urllib.request.Request(f"{hook}/stats", headers={"Authorization": f"Bearer {token}"})
        stats = {}
        for _ in range(100):
            with urllib.request.urlopen(authed, timeout=10) as r:
                stats = json.load(r)
            if stats["opt_outs"] >= 1:
                break
            time.sleep(0.2)
        assert stats["events_stored"] >= 1 and stats["opt_outs"] == 1, stats
        state = json.loads((tmp_path / "data" / "run" / "stack.json").read_text())
        assert set(state["children"]) == {"sandbox", "api-server", "scheduler", "dag-processor", "triggerer"}
        assert len(_ours(data_dir)) >= 6
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground process
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out + proc.stdout.read()
    from tests.support import wait_until

    try:  # children the supervisor signalled may take a moment to be reaped
        wait_until(lambda: not _ours(data_dir), timeout=10, poll_s=0.1, what="every stack process gone")
    except AssertionError:
        left = _ours(data_dir)
        raise AssertionError([p.info["cmdline"] for p in left]) from None
