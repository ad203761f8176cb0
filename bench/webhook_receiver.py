"""Webhook receiver throughput: signed status webhooks posted concurrently to the receiver (the app the
api-server plugin serves, here under uvicorn with one worker, as `make run` configures the api-server),
counted in (200 answers) and counted stored (rows in webhook_events). Target: >= 1,000 events/s, none lost.

    .venv/bin/python -m bench.webhook_receiver [--events 20000] [--concurrency 64] [--runs 3]
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

import httpx
import sqlalchemy as sa

from bench.common import median, write_result
from bench.support import app_database
from tests.support import free_port

SECRET = "bench-app-secret"


def body(i: int, run: int) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "200000000000001", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "statuses": [{
            "id": f"wamid.bench{run}.{i}", "status": "delivered", "timestamp": str(1763870000 + i % 300),
            "recipient_id": f"9190{i:08d}", "biz_opaque_callback_data": f"2026-11-23:{i}"}]}}]}]}).encode()


async def blast(port: int, n: int, concurrency: int, run: int) -> dict:
    """Keep-alive HTTP/1.1 over raw asyncio streams: a load generator much lighter than an HTTP client
    library, so that on 2 cores the receiver (not the generator) is what gets measured."""
    requests = []
    for i in range(n):
        p = body(i, run)
        sig = "sha256=" + hmac.new(SECRET.encode(), p, hashlib.sha256).hexdigest()
        requests.append((f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         f"X-Hub-Signature-256: {sig}\r\nContent-Length: {len(p)}\r\n\r\n").encode() + p)
    codes: dict[int, int] = {}
    next_i = iter(range(n))

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


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    runs = []
    with app_database() as (_pg, engine, url):
        port = free_port()
        env = dict(os.environ, FA_BENCH_DB_URL=str(url), FA_BENCH_APP_SECRET=SECRET, PYTHONPATH=os.getcwd())
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.receiver_app:app", "--host", "127.0.0.1",
                                   "--port", str(port), "--log-level", "warning", "--no-access-log"], env=env)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/webhook/stats", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            for run in range(args.runs):
                with engine.begin() as c:
                    before = c.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar_one()
                out = asyncio.run(blast(port, args.events, args.concurrency, run))
                with engine.begin() as c:
                    stored = c.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar_one() - before
                ok = out["codes"].get(200, 0)
                runs.append({"events": args.events, "answered_200": ok, "stored": stored, "lost": ok - stored,
                             "other_codes": {k: v for k, v in out["codes"].items() if k != 200},
                             "elapsed_s": round(out["elapsed_s"], 2),
                             "events_per_s": round(args.events / out["elapsed_s"], 1)})
                print(runs[-1])
            stats = httpx.get(f"http://127.0.0.1:{port}/webhook/stats", timeout=5).json()
        finally:
            server.terminate()
            server.wait(10)
    rate = median([r["events_per_s"] for r in runs])
    figures = {"concurrency": args.concurrency, "runs": runs, "median_events_per_s": rate,
               "receiver_commits": stats["commits"],
               "events_per_commit": round(stats["events_stored"] / max(1, stats["commits"]), 1),
               "target_events_per_s": 1000,
               "meets": {"events_per_s": rate >= 1000, "none_lost": all(r["lost"] == 0 and r["stored"] == r["events"]
                                                                         for r in runs)}}
    write_result("webhook_receiver", figures)
    return figures


if __name__ == "__main__":
    main()
