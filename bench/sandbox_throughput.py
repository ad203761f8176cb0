"""Sandbox throughput with limits off: it must sustain >= 2,000 sends/s so that it is never the
bottleneck of delivery benchmarks. The load generator is aiohttp in a separate process from the
server (httpx itself tops out near 1,000 req/s per process, see include/whatsapp/client.py).

    .venv/bin/python -m bench.sandbox_throughput [--seconds 10] [--concurrency 32] [--runs 3]
"""
from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp

from bench.common import median, percentile, write_result
from tests.support import TEST_TOKEN, SandboxProcess

PNID = "100000000000001"


def _message(i: int) -> dict:
    return {"messaging_product": "whatsapp", "to": f"+9197{i:08d}", "type": "template", "template": {
        "name": "daily_pack_v1", "language": {"code": "en"}, "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example/a.png"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": t} for t in ("Asha", "View", "Disclaimer")]}]},
        "biz_opaque_callback_data": f"bench:{i}"}


async def _run(url: str, seconds: float, concurrency: int) -> tuple[int, int, list[float]]:
    ok = errors = 0
    latencies: list[float] = []
    counter = iter(range(10**9))
    stop_at = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {TEST_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async def worker():
            nonlocal ok, errors
            while time.monotonic() < stop_at:
                t = time.perf_counter()
                async with session.post(f"{url}/v21.0/{PNID}/messages", json=_message(next(counter))) as r:
                    await r.read()
                    if r.status == 200:
                        ok += 1
                    else:
                        errors += 1
                latencies.append((time.perf_counter() - t) * 1000)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, errors, latencies


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    import tempfile
    from pathlib import Path

    runs = []
    sb = SandboxProcess(Path(tempfile.mkdtemp()), limits=False)
    try:
        for _ in range(args.runs):
            sb.reset()
            ok, errors, lat = asyncio.run(_run(sb.url, args.seconds, args.concurrency))
            runs.append({"requests_per_s": round(ok / args.seconds, 1), "errors": errors,
                         "p50_ms": round(percentile(lat, 50), 2), "p99_ms": round(percentile(lat, 99), 2)})
            print(runs[-1])
        accepted = sb.ledger_stats()["accepted"]
    finally:
        sb.stop()
    rps = median([r["requests_per_s"] for r in runs])
    figures = {"runs": runs, "median_requests_per_s": rps,
               "median_p50_ms": median([r["p50_ms"] for r in runs]),
               "median_p99_ms": median([r["p99_ms"] for r in runs]),
               "ledger_accepted_last_run": accepted, "target_requests_per_s": 2000,
               "meets_target": rps >= 2000, "concurrency": args.concurrency, "seconds_per_run": args.seconds}
    write_result("sandbox_throughput", figures)
    return figures


if __name__ == "__main__":
    main()
