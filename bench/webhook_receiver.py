"""Webhook receiver throughput (issue 19): signed status webhooks, one status per request as Meta sends them at
1,000 msg/s, posted concurrently over keep-alive connections; counted in (200 answers) and counted stored (rows
in webhook_events). A share of the requests are replays of others (Meta retries), shuffled in, so some land in
the same group commit as their original: stored must equal the unique events exactly (none lost, none twice).
Target: >= 6,000 events/s, none lost.

Layouts, measured in alternation (run 1 of each, then run 2 of each, ...) so that the machine's background load
falls on all of them alike:

* `standalone`: the receiver app alone under uvicorn (bench/receiver_app.py; `--workers N` processes, default
  1) — the layout the README recommends for production, its own process behind the same URL;
* `apiserver`: the same plugin inside Airflow's own api-server app (`airflow.api_fastapi.app.create_app()`,
  plugins loaded, its middlewares in front) under uvicorn, one worker, at /whatsapp/webhook
  (uvicorn `airflow.api_fastapi.main:app`, what `airflow api-server` serves);
* `before`: `--before DIR` serves bench/receiver_app.py from another checkout (e.g. `git archive` of an older
  commit) with this same load, for before/after figures.

CPU seconds of the server, PostgreSQL and the load generator are measured per run (machine: 2 cores, shared),
and the 1-minute load average is recorded with each figure.

    .venv/bin/python -m bench.webhook_receiver [--events 20000] [--replays 0.05] [--concurrency 64] [--runs 3]
        [--layouts standalone,apiserver] [--workers 1] [--apiserver-events 3000] [--before DIR]
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import sqlalchemy as sa

from bench.common import CpuMeter, median, write_result
from bench.support import app_database
from tests.support import free_port

SECRET = "bench-app-secret"
VERIFY = "bench"
TARGET_EVENTS_PER_S = 6000
ROOT = Path(__file__).resolve().parents[1]


def body(i: int, tag: str) -> bytes:
    """One status update with every field Meta's current status webhook carries (metadata, conversation, pricing;
    https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status),
    as devtools/sandbox/webhooks.py sends it."""
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "200000000000001", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "918000000001", "phone_number_id": "100000000000001"},
            "statuses": [{
                "id": f"wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgS{tag}{i:08d}", "status": "delivered",
                "timestamp": str(1763870000 + i % 300), "recipient_id": f"9190{i:08d}",
                "biz_opaque_callback_data": f"2026-11-23:{i}",
                "conversation": {"id": f"conv{i:028d}", "origin": {"type": "marketing"}},
                "pricing": {"billable": True, "pricing_model": "PMP", "category": "marketing",
                            "type": "regular"}}]}}]}]}).encode()


def requests_for(n: int, replays: float, tag: str, path: str) -> list[bytes]:
    """n unique signed requests plus round(n * replays) byte-identical replays of some of them, shuffled."""
    out = []
    for i in range(n):
        p = body(i, tag)
        sig = "sha256=" + hmac.new(SECRET.encode(), p, hashlib.sha256).hexdigest()
        out.append((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"X-Hub-Signature-256: {sig}\r\nContent-Length: {len(p)}\r\n\r\n").encode() + p)
    rng = random.Random(tag)
    out += [out[rng.randrange(n)] for _ in range(round(n * replays))]
    rng.shuffle(out)
    return out


async def blast(port: int, requests: list[bytes], concurrency: int) -> dict:
    """Keep-alive HTTP/1.1 over raw asyncio streams: a load generator much lighter than an HTTP client
    library, so that on 2 cores the receiver (not the generator) is what gets measured."""
    codes: dict[int, int] = {}
    next_i = iter(range(len(requests)))

    async def connection():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in next_i:
                writer.write(requests[i])
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                codes[status] = codes.get(status, 0) + 1
        finally:
            writer.close()

    t = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return {"elapsed_s": time.perf_counter() - t, "codes": codes}


class Server:
    """One receiver layout under uvicorn (one worker, uvloop + httptools as uvicorn picks them), in its own
    process."""

    def __init__(self, layout: str, pg, db_name: str, url: str, before: str | None, tmp: Path, workers: int = 1):
        self.layout = layout
        self.port = free_port()
        env = dict(os.environ, FA_BENCH_DB_URL=str(url), FA_BENCH_APP_SECRET=SECRET)
        cwd, module, self.path = ROOT, "bench.receiver_app:app", "/webhook"
        if layout == "before":
            cwd = Path(before).resolve()
        elif layout == "apiserver":
            # What `airflow api-server` itself serves (uvicorn "airflow.api_fastapi.main:app"), plugins included.
            module, self.path = "airflow.api_fastapi.main:app", "/whatsapp/webhook"
            home = tmp / "airflow"
            home.mkdir(exist_ok=True)
            env.update({
                "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url("airflow_meta", driver="psycopg2"),
                "AIRFLOW__API_AUTH__JWT_SECRET": "bench-jwt-secret-" + "x" * 64,
                "AIRFLOW__CORE__AUTH_MANAGER":
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",  # as `make run` configures it
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW_CONN_APP_DB": pg.connection_json(db_name),
                "AIRFLOW_CONN_WHATSAPP_CLOUD": json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9",
                                                           "extra": {"app_secret": SECRET, "verify_token": VERIFY}}),
            })
        env["PYTHONPATH"] = str(cwd)
        self.log = tmp / f"{layout}.log"  # the api-server writes an access-log line per request
        with self.log.open("ab") as log:
            # No proxy-headers middleware: `airflow api-server` runs without it unless --proxy-headers is given,
            # and the standalone receiver does not use the client address.
            self.proc = subprocess.Popen([sys.executable, "-m", "uvicorn", module, "--host", "127.0.0.1",
                                          "--port", str(self.port), "--log-level", "warning", "--no-access-log",
                                          "--no-proxy-headers", "--workers", str(workers)],
                                         env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        handshake = f"http://127.0.0.1:{self.port}{self.path}"
        while True:
            try:
                r = httpx.get(handshake, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY,
                                                 "hub.challenge": "1"}, timeout=2)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {layout} receiver did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def measure(server: Server, engine, pg_pid: int, n: int, replays: float, concurrency: int, tag: str) -> dict:
    requests = requests_for(n, replays, tag, server.path)
    with engine.begin() as c:
        before = c.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar_one()
    load = os.getloadavg()[0]
    me = psutil.Process()  # the load generator: this process alone (the servers and PostgreSQL are children)
    own = me.cpu_times()
    with CpuMeter({"receiver": server.proc.pid, "postgres": pg_pid}) as cpu:
        out = asyncio.run(blast(server.port, requests, concurrency))
    now = me.cpu_times()
    with engine.begin() as c:
        stored = c.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar_one() - before
    ok = out["codes"].get(200, 0)
    seconds = {**cpu.seconds(), "load_generator": now.user + now.system - own.user - own.system}
    return {"layout": server.layout, "unique_events": n, "requests": len(requests), "answered_200": ok,
            "stored": stored, "lost": n - stored if ok == len(requests) else f"{len(requests) - ok} not answered 200",
            "other_codes": {k: v for k, v in out["codes"].items() if k != 200},
            "elapsed_s": round(out["elapsed_s"], 2), "events_per_s": round(ok / out["elapsed_s"], 1),
            "cpu_ms_per_event": {k: round(v * 1000 / max(1, ok), 3) for k, v in seconds.items()},
            "load_avg_1m_before": round(load, 2)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=20_000, help="unique events per run")
    p.add_argument("--replays", type=float, default=0.05, help="extra byte-identical replays, as a share")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--layouts", default="standalone,apiserver")
    p.add_argument("--before", help="a checkout whose bench/receiver_app.py is measured as layout 'before'")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the standalone receiver")
    p.add_argument("--apiserver-events", type=int, default=3000,
                   help="unique events per run inside the api-server (it is an order of magnitude slower)")
    args = p.parse_args(argv)
    layouts = [x for x in args.layouts.split(",") if x] + (["before"] if args.before else [])
    runs: list[dict] = []
    with app_database() as (pg, engine, url), tempfile.TemporaryDirectory(prefix="fa-bench-recv-") as tmp:
        if "apiserver" in layouts:
            pg.create_database("airflow_meta")
        db_name = sa.engine.make_url(str(url)).database
        servers = {}
        try:
            for layout in layouts:
                servers[layout] = Server(layout, pg, db_name, url, args.before, Path(tmp),
                                         args.workers if layout == "standalone" else 1)
            pg_pid = int((Path(pg.data_dir) / "postmaster.pid").read_text().split()[0])
            for run in range(args.runs):
                for layout in layouts:
                    n = args.apiserver_events if layout == "apiserver" else args.events
                    runs.append(measure(servers[layout], engine, pg_pid, n, args.replays,
                                        args.concurrency, f"{layout[:2]}{run}"))
                    print(runs[-1], flush=True)
            stats = {layout: httpx.get(f"http://127.0.0.1:{s.port}/webhook/stats", timeout=5).json()
                     for layout, s in servers.items() if layout != "apiserver"}
        finally:
            for s in servers.values():
                s.stop()
    by_layout = {}
    for layout in layouts:
        mine = [r for r in runs if r["layout"] == layout]
        rate = median([r["events_per_s"] for r in mine])
        st = stats.get(layout, {})
        by_layout[layout] = {
            "median_events_per_s": rate,
            "median_cpu_ms_per_event": {k: median([r["cpu_ms_per_event"][k] for r in mine])
                                        for k in mine[0]["cpu_ms_per_event"]},
            # from the stats of the process that answered (one of them with --workers > 1)
            "events_per_commit": round(st["events_stored"] / max(1, st["commits"]), 1) if st else None,
            "meets": {"events_per_s": rate >= TARGET_EVENTS_PER_S,
                      "none_lost": all(r["lost"] == 0 and r["answered_200"] == r["requests"] for r in mine)}}
    figures = {"concurrency": args.concurrency, "standalone_workers": args.workers,
               "unique_events_per_run": args.events,
               "apiserver_unique_events_per_run": args.apiserver_events, "replay_share": args.replays,
               "target_events_per_s": TARGET_EVENTS_PER_S, "layouts": by_layout, "runs": runs}
    write_result("webhook_receiver", figures)
    return figures


if __name__ == "__main__":
    main()
