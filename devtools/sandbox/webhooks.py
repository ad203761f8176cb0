"""Webhook delivery from the sandbox to the configured callback, the way Meta delivers them:
signed with X-Hub-Signature-256, at least once (configurable duplicates), possibly out of
order (configurable reordering), and retried with backoff while the receiver answers an error.

The dispatcher is also the sandbox's clock for timed faults (template paused at T, quality RED at T): its
scheduler wakes when one is due and fires it, so the lifecycle webhook goes out on time even when no API
request arrives (devtools/sandbox/lifecycle.py).
"""
from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import itertools
import logging
import time
from collections import Counter

import aiohttp
import msgspec

from devtools.sandbox.lifecycle import next_fault_at

log = logging.getLogger(__name__)


def sign(body: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookDispatcher:
    def __init__(self, sandbox, workers: int = 16):
        self.sandbox = sandbox
        self.workers = workers
        self._heap: list[tuple[float, int, dict, int]] = []
        self._seq = itertools.count()
        self._queue: asyncio.Queue | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._posting = 0  # taken off the queue, not yet answered
        self._client: aiohttp.ClientSession | None = None
        self.stats: Counter[str] = Counter()

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._wake = asyncio.Event()
        # aiohttp, not httpx: at 1,000 msg/s the sandbox posts a few hundred webhooks a second on the cores it
        # shares with what it measures, and httpx's pool bookkeeping was a third of its CPU (py-spy).
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.workers * 2),
            timeout=aiohttp.ClientTimeout(total=10.0, connect=2.0), cookie_jar=aiohttp.DummyCookieJar())
        self._tasks = [asyncio.create_task(self._scheduler())]
        self._tasks += [asyncio.create_task(self._worker()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client:
            await self._client.close()

    def clear(self) -> None:
        """Forget what is scheduled or queued (a reset): none of it may reach the next world's receiver."""
        self._heap.clear()
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait()
        self.stats.clear()

    @property
    def pending(self) -> int:
        """Webhooks scheduled, queued or being posted: 0 means everything due so far has been delivered (or
        dropped), which tests poll for instead of sleeping."""
        return len(self._heap) + (self._queue.qsize() if self._queue else 0) + self._posting

    @property
    def not_due(self) -> int:
        """Webhooks scheduled for later (retries, delays): the rest of `pending` is due, queued or being posted."""
        return len(self._heap)

    def kick(self) -> None:
        """Wake the scheduler now (a timed fault was set or changed)."""
        if self._wake is not None:
            self._wake.set()

    def _fire_due_faults(self) -> float | None:
        """Fire the timed faults that are due; seconds until the next one, or None."""
        due = next_fault_at(self.sandbox)
        if due is None:
            return None
        if due <= time.time():
            try:
                self.sandbox.apply_scheduled_faults()
            except Exception:
                log.exception("timed faults could not be applied; retrying in 1 s")  # the clock keeps running
                return 1.0
            due = next_fault_at(self.sandbox)
            if due is None:
                return None
        return max(0.0, due - time.time())

    def schedule(self, payload: dict, delay_s: float, attempt: int = 1) -> None:
        heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay_s), next(self._seq), payload, attempt))
        self.stats["scheduled"] += 1
        if self._wake is not None:
            self._wake.set()

    def message_accepted(self, entry) -> None:
        """Plan the status webhooks of one accepted message, with reordering and duplicates."""
        w = self.sandbox.webhooks
        if not w.url:
            return
        rng = self.sandbox.rng
        events = self.sandbox.planned_statuses(entry)  # (status, offset from acceptance, error)
        delays = [offset for _, offset, _ in events]
        # Reorder: a later event overtakes an earlier one; event timestamps keep the true order.
        if len(delays) > 1 and rng.random() < w.reorder_rate:
            i = rng.randrange(len(delays) - 1)
            delays[i], delays[i + 1] = delays[i + 1], delays[i]
            self.stats["reordered"] += 1
        for (status, offset, error), delay in zip(events, delays, strict=True):
            event_ts = entry.accepted_at + offset
            entry.statuses.append((status, event_ts))
            payload = self.sandbox.status_payload(entry, [(status, event_ts, error)])
            self.schedule(payload, delay)
            if rng.random() < w.duplicate_rate:
                self.stats["duplicated"] += 1
                self.schedule(payload, delay + rng.uniform(0.05, 0.5))

    async def _scheduler(self) -> None:
        assert self._queue is not None and self._wake is not None
        while True:
            fault_in = self._fire_due_faults()
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                _, _, payload, attempt = heapq.heappop(self._heap)
                self._queue.put_nowait((payload, attempt))
            timeout = (self._heap[0][0] - now) if self._heap else 1.0
            if fault_in is not None:
                timeout = min(timeout, fault_in)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.001, timeout))
            except TimeoutError:
                pass

    async def _worker(self) -> None:
        assert self._queue is not None and self._client is not None
        while True:
            batch = [await self._queue.get()]
            # Meta aggregates notifications that are due together, up to 1,000 updates per POST, without
            # guaranteeing it ("Event Notifications are aggregated and sent in a batch with a maximum of 1000
            # updates. However batching cannot be guaranteed": developers.facebook.com/docs/graph-api/webhooks/
            # getting-started, Event Notifications). Here: whatever is already due, up to batch_max (1 = never).
            limit = max(1, int(self.sandbox.webhooks.batch_max))
            while len(batch) < limit and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._posting += len(batch)
            try:
                await self._post(batch)
            finally:
                self._posting -= len(batch)

    @staticmethod
    def aggregate(payloads: list[dict]) -> dict:
        """One notification carrying several: entries of the same account merged, their changes in order."""
        if len(payloads) == 1:
            return payloads[0]
        entries: dict[str, dict] = {}
        for payload in payloads:
            for entry in payload["entry"]:
                merged = entries.setdefault(entry["id"], {**entry, "changes": []})
                merged["changes"].extend(entry["changes"])
        return {"object": payloads[0]["object"], "entry": list(entries.values())}

    async def _post(self, batch: list[tuple[dict, int]]) -> None:
        w = self.sandbox.webhooks
        url = w.url
        if not url:
            return
        body = msgspec.json.encode(self.aggregate([payload for payload, _ in batch]))
        headers = {"Content-Type": "application/json",
                   "X-Hub-Signature-256": sign(body, self.sandbox.settings.app_secret)}
        try:
            async with self._client.post(url, data=body, headers=headers) as resp:
                await resp.read()
                ok = 200 <= resp.status < 300
        except (aiohttp.ClientError, TimeoutError, OSError):
            ok = False
        self.stats["posts"] += 1
        if ok:
            self.stats["delivered"] += len(batch)
            return
        for payload, attempt in batch:  # each notification is retried on its own schedule
            if attempt < w.max_attempts:
                self.stats["retried"] += 1
                self.schedule(payload, w.retry_base_s * (2 ** (attempt - 1)), attempt + 1)
            else:
                self.stats["dropped"] += 1
                log.warning("webhook dropped after %d attempts", attempt)

    def send_now(self, payload: dict) -> None:
        self.schedule(payload, 0.0)
