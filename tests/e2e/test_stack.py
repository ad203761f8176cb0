"""`make run`'s supervisor: PostgreSQL, sandbox and all four Airflow components come up healthy on
loopback, a whole business day runs through the real scheduler (ops_run_business_day), and Ctrl-C (SIGINT)
leaves no process behind. Slow (a few minutes): it starts real Airflow."""
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

from tests.support import fanout_slot_far_from_now, read_stack_banner, start_stack

# The whole-stack tests share one xdist worker (`make test` runs two): each starts real Airflow on the same 2 cores.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("stack")]


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


def _api(base: str, token: str, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(f"{base}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.load(r)


def _run_a_whole_business_day(base: str, token: str) -> None:
    """ops_run_business_day through the real scheduler, triggerer and LocalExecutor: the four runbook DAGs run
    for today in order, each run gets its note (written by its summary task through the REST API with the
    stack's service user), and the day's own note sums them up."""
    from tests.support import wait_until

    wait_until(lambda: _dag_parsed(base, token, "ops_run_business_day"), timeout=120, poll_s=1,
               what="ops_run_business_day parsed by the dag-processor")
    run = _api(base, token, "POST", "/api/v2/dags/ops_run_business_day/dagRuns",
               {"logical_date": None, "conf": {"jitter_window_s": 5, "honour_jitter": False}})
    path = f"/api/v2/dags/ops_run_business_day/dagRuns/{run['dag_run_id']}"
    done = wait_until(lambda: (r := _api(base, token, "GET", path))["state"] in ("success", "failed") and r,
                      timeout=600, poll_s=3, what="the business-day run finished")
    children = {dag_id: _api(base, token, "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}__{step}")
                for dag_id, step in (("nightly_content_window", "nightly_content_window"),
                                     ("pre_delivery_check", "pre_delivery_check"), ("delivery_fanout", "fanout"),
                                     ("post_delivery_report", "post_delivery_report"))}
    assert done["state"] == "success", (done, {d: c["state"] for d, c in children.items()})
    for dag_id, child in children.items():
        assert child["state"] == "success", (dag_id, child)
        assert child["conf"]["business_date"] == children["pre_delivery_check"]["conf"]["business_date"]
        assert child["note"] and child["note"][:1] in "🟢🟡🟠🔴", (dag_id, child["note"])
    assert "Business day run for" in done["note"], done["note"]


def _a_missed_deadline_pages(base: str, token: str, sandbox: str) -> None:
    """A Deadline Alert through the real scheduler and triggerer: a pre_delivery_check run whose slot was 10 min ago
    is past its 8-minute deadline while it runs, and DeadlineMissedNotifier posts the page to Slack."""
    import datetime as dt

    from tests.support import wait_until

    slot = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).replace(microsecond=0)
    run = _api(base, token, "POST", "/api/v2/dags/pre_delivery_check/dagRuns",
               {"logical_date": slot.isoformat(), "conf": {"jitter_window_s": 5}})

    def deadline_post():
        with urllib.request.urlopen(f"{sandbox}/slack/api/posts", timeout=10) as r:
            posts = json.load(r)["posts"]
        # This run's page: a scheduled pre_delivery_check run the stack started at boot may miss its deadline too.
        return next((p["payload"] for p in posts
                     if "pre_delivery_check missed its deadline" in p["payload"].get("text", "")
                     and run["dag_run_id"] in json.dumps(p["payload"].get("blocks"))), None)

    post = wait_until(deadline_post, timeout=180, poll_s=2, what="the deadline-missed page on Slack")
    assert post["text"].startswith("[P0]") and "pre_delivery_check missed its deadline (05:58 IST)" in post["text"]
    assert run["dag_run_id"] in json.dumps(post["blocks"])


def _dag_parsed(base: str, token: str, dag_id: str) -> bool:
    try:
        _api(base, token, "GET", f"/api/v2/dags/{dag_id}")
        return True
    except urllib.error.HTTPError:
        return False


def test_make_run_comes_up_healthy_and_ctrl_c_leaves_no_orphans(tmp_path):
    data_dir = str(tmp_path / "data")
    proc, api_port, sandbox_port = start_stack(data_dir, advisors=60, extra_env=fanout_slot_far_from_now())
    out = ""
    try:
        out = read_stack_banner(proc, timeout_s=150)
        assert "Airflow UI:" in out and "login: admin / " in out, out
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=10) as r:
            health = json.load(r)
        for component in ("metadatabase", "scheduler", "dag_processor", "triggerer"):
            assert health[component]["status"] == "healthy", health
        # The webhook receiver runs as its own process (the banner's URL) and the api-server plugin serves the same
        # app: both answer Meta's handshake. The sandbox's callback reaches the receiver process: an inbound STOP
        # lands on the do-not-contact list.
        token = json.loads((tmp_path / "data" / "secrets.json").read_text())["verify_token"]
        receiver = re.search(r"Webhooks:\s+(http://127\.0\.0\.1:\d+/webhook)", out).group(1)
        for url in (f"http://127.0.0.1:{api_port}/whatsapp/webhook", receiver):
            with urllib.request.urlopen(f"{url}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=42",
                                        timeout=10) as r:
                assert r.read() == b"42", url
        hook = receiver
        req = urllib.request.Request(f"http://127.0.0.1:{sandbox_port}/_sandbox/inbound", method="POST",
                                     data=json.dumps({"from": "+919812340000", "text": "STOP"}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        # The receiver's stats are an operational route: they need an Airflow login (Meta's routes do not), in
        # the receiver process as in the api-server.
        for url in (hook, f"http://127.0.0.1:{api_port}/whatsapp/webhook"):
            try:
                urllib.request.urlopen(f"{url}/stats", timeout=10)
                raise AssertionError(f"{url}/stats answered without an Airflow login")
            except urllib.error.HTTPError as exc:
                assert exc.code == 401, (url, exc.code)
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
        pools = {p["name"]: p["slots"] for p in _api(f"http://127.0.0.1:{api_port}", token, "GET", "/api/v2/pools")["pools"]}
        from dataclasses import fields

        from devtools.devstack.env import StackSettings

        slots = next(f.default for f in fields(StackSettings) if f.name == "parallelism")  # the executor's slots
        assert pools.get("delivery_senders") == slots and pools.get("db_maintenance") == 1, pools
        _run_a_whole_business_day(f"http://127.0.0.1:{api_port}", token)
        _a_missed_deadline_pages(f"http://127.0.0.1:{api_port}", token, f"http://127.0.0.1:{sandbox_port}")
        state = json.loads((tmp_path / "data" / "run" / "stack.json").read_text())
        assert set(state["children"]) == {"sandbox", "receiver", "api-server", "scheduler", "dag-processor",
                                          "triggerer"}
        assert len(_ours(data_dir)) >= 6
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground process
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    shutdown_log = proc.stdout.read()
    assert proc.returncode == 0, out + shutdown_log
    from tests.support import wait_until

    try:  # children the supervisor signalled may take a moment to be reaped
        wait_until(lambda: not _ours(data_dir), timeout=30, poll_s=0.2, what="every stack process gone")
    except AssertionError:
        left = _ours(data_dir)
        raise AssertionError(([p.info["cmdline"] for p in left], shutdown_log[-3000:])) from None
