"""The WhatsApp webhook receiver: the endpoint Meta calls with message statuses and inbound messages.

Served by the Airflow api-server as a plugin FastAPI app (plugins/whatsapp_webhook.py) at
`/whatsapp/webhook`, so there is no extra service to run; it can equally be run alone with uvicorn
(`create_app` takes its engine and secrets explicitly), which the tests and the benchmark do.

* GET answers Meta's verification handshake (hub.mode / hub.verify_token / hub.challenge).
* POST verifies `X-Hub-Signature-256` over the raw body with the app secret: 401 when missing, 403
  when wrong; nothing is stored for a rejected request.
* Every event is stored in `webhook_events`, deduplicated on wamid + status + timestamp (statuses)
  or message id (inbound), and committed before the 200: a 200 means durable. Requests arriving
  together share one transaction (group commit), which is what keeps 1,000+ events/s cheap.
* An inbound opt-out reply (STOP and the configured keywords, English and Hindi, case-insensitive)
  puts the number on `do_not_contact` in the same transaction, with the source event. The sender
  re-checks DNC at send time, so no later send reaches it. Other inbound messages are stored.
* Turning statuses into `deliveries` is separate (include/reconcile.py, post_delivery_report).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.engine import Engine

from include import config
from include.db import query

log = logging.getLogger(__name__)

_EDGE_PUNCT = ".!?,;:'\"()[]{}-_*~।"


@dataclass(frozen=True)
class ReceiverSecrets:
    app_secret: str
    verify_token: str


def signature_ok(raw: bytes, header: str | None, app_secret: str) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header[len("sha256="):].strip().lower(), expected)


def opt_out_keyword(text: str | None, keywords: tuple[str, ...] = config.OPT_OUT_KEYWORDS) -> str | None:
    """The keyword an inbound text opts out with, if any: the whole message is a keyword, or starts with
    one and is at most four words ("STOP please", "बंद करें"). "Don't stop the updates" is not an opt-out."""
    if not text:
        return None
    norm = " ".join(text.strip().strip(_EDGE_PUNCT).casefold().split())
    if norm in keywords:
        return norm
    words = norm.split()
    if len(words) <= 4:
        for k in sorted(keywords, key=len, reverse=True):
            kw = k.split()
            if words[:len(kw)] == kw:
                return k
    return None


@dataclass
class ParsedEvent:
    dedupe_key: str
    kind: str
    payload: dict
    wamid: str | None = None
    status: str | None = None
    from_phone: str | None = None
    event_ts: dt.datetime | None = None
    biz_opaque: str | None = None
    opt_out: str | None = None


def _ts(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    except (TypeError, ValueError):
        return None


def _phone(wa_id: str | None) -> str | None:
    if not wa_id:
        return None
    digits = wa_id.lstrip("+")
    return f"+{digits}" if digits.isdigit() else None


def _inbound_text(msg: dict) -> str | None:
    kind = msg.get("type")
    if kind == "text":
        return (msg.get("text") or {}).get("body")
    if kind == "button":
        return (msg.get("button") or {}).get("text") or (msg.get("button") or {}).get("payload")
    if kind == "interactive":
        inter = msg.get("interactive") or {}
        reply = inter.get("button_reply") or inter.get("list_reply") or {}
        return reply.get("title")
    return None


def parse_events(payload: dict) -> list[ParsedEvent]:
    """Flatten a webhook body into events. Raises ValueError for a body that is not a WhatsApp webhook."""
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        raise ValueError("not a whatsapp_business_account webhook")
    events: list[ParsedEvent] = []
    for entry in payload.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value") or {}
            for s in value.get("statuses") or []:
                wamid, status, ts = s.get("id"), s.get("status"), s.get("timestamp")
                if not wamid or not status:
                    raise ValueError(f"status event without id or status: {json.dumps(s)[:200]}")
                events.append(ParsedEvent(f"s:{wamid}:{status}:{ts}", "status", s, wamid=wamid, status=status,
                                          from_phone=_phone(s.get("recipient_id")), event_ts=_ts(ts),
                                          biz_opaque=s.get("biz_opaque_callback_data")))
            for m in value.get("messages") or []:
                if not m.get("id"):
                    raise ValueError(f"inbound message without id: {json.dumps(m)[:200]}")
                events.append(ParsedEvent(f"m:{m['id']}", "message", m, wamid=m["id"], status=m.get("type"),
                                          from_phone=_phone(m.get("from")), event_ts=_ts(m.get("timestamp")),
                                          opt_out=opt_out_keyword(_inbound_text(m))))
            for err in value.get("errors") or []:
                digest = hashlib.sha256(json.dumps(err, sort_keys=True).encode()).hexdigest()[:32]
                events.append(ParsedEvent(f"e:{entry.get('id')}:{digest}", "error", err,
                                          status=str(err.get("code"))))
    return events


@dataclass
class _Pending:
    events: list[ParsedEvent]
    raw: str
    done: asyncio.Future


@dataclass
class ReceiverStats:
    requests: int = 0
    events_received: int = 0
    events_stored: int = 0
    duplicates: int = 0
    opt_outs: int = 0
    rejected_401: int = 0
    rejected_403: int = 0
    bad_requests: int = 0
    commits: int = 0
    started_at: float = field(default_factory=time.time)


def store(engine: Engine, batch: list[tuple[ParsedEvent, str]]) -> tuple[int, int]:
    """Insert events (with their raw bodies) and any opt-outs in one transaction: (stored, opt-outs)."""
    if not batch:
        return 0, 0
    cols: dict[str, list] = {k: [] for k in ("dedupe_keys", "kinds", "wamids", "statuses", "from_phones", "event_ts",
                                             "biz_opaques", "payloads", "raw_bodies")}
    for ev, raw in batch:
        cols["dedupe_keys"].append(ev.dedupe_key)
        cols["kinds"].append(ev.kind)
        cols["wamids"].append(ev.wamid)
        cols["statuses"].append(ev.status)
        cols["from_phones"].append(ev.from_phone)
        cols["event_ts"].append(ev.event_ts)
        cols["biz_opaques"].append(ev.biz_opaque)
        cols["payloads"].append(json.dumps(ev.payload))
        cols["raw_bodies"].append(raw)
    with engine.begin() as conn:
        new = {r.dedupe_key: r.event_id for r in conn.execute(query("webhooks/insert_events"), cols)}
        opt = [(ev.from_phone, f'inbound opt-out reply "{ev.opt_out}"', new[ev.dedupe_key]) for ev, _ in batch
               if ev.opt_out and ev.from_phone and ev.dedupe_key in new]
        added = 0
        if opt:
            added = len(conn.execute(query("webhooks/add_opt_outs"), {
                "phones": [o[0] for o in opt], "reasons": [o[1] for o in opt],
                "event_ids": [o[2] for o in opt]}).fetchall())
    return len(new), added


class GroupCommitWriter:
    """Requests wait for the commit of the batch they are in; one transaction per batch."""

    def __init__(self, engine_factory: Callable[[], Engine], stats: ReceiverStats, max_batch: int = 500):
        self.engine_factory = engine_factory
        self.stats = stats
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task | None = None

    def _ensure_started(self) -> None:
        # A mounted sub-app gets no lifespan events, so the writer starts with the first request.
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, events: list[ParsedEvent], raw: str) -> None:
        self._ensure_started()
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(events, raw, fut))
        await fut

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            group = [first]
            while not self._queue.empty() and sum(len(p.events) for p in group) < self.max_batch:
                group.append(self._queue.get_nowait())
            batch = [(ev, p.raw) for p in group for ev in p.events]
            try:
                stored, opted = await asyncio.to_thread(store, self.engine_factory(), batch)
            except Exception as exc:
                log.exception("storing %d webhook events failed", len(batch))
                for p in group:
                    if not p.done.done():
                        p.done.set_exception(exc)
                continue
            self.stats.commits += 1
            self.stats.events_stored += stored
            self.stats.duplicates += len(batch) - stored
            self.stats.opt_outs += opted
            for p in group:
                if not p.done.done():
                    p.done.set_result(None)


def secrets_from_connection(conn_id: str = config.WHATSAPP_CONN_ID) -> ReceiverSecrets:
    from airflow.sdk import BaseHook

    extra = BaseHook.get_connection(conn_id).extra_dejson
    if not extra.get("app_secret") or not extra.get("verify_token"):
        raise RuntimeError(f"connection {conn_id!r} needs app_secret and verify_token extras for the webhook")
    return ReceiverSecrets(extra["app_secret"], extra["verify_token"])


def create_app(engine_factory: Callable[[], Engine] | None = None,
               secrets_factory: Callable[[], ReceiverSecrets] | None = None):
    if engine_factory is None:
        from include.db import get_engine

        engine_factory = get_engine
    secrets_factory = secrets_factory or secrets_from_connection
    cache: dict[str, Any] = {}

    def secrets() -> ReceiverSecrets:
        # Re-read every minute so a rotated app secret takes effect without a restart.
        if cache.get("at", 0) < time.monotonic() - 60:
            cache.update(value=secrets_factory(), at=time.monotonic())
        return cache["value"]

    stats = ReceiverStats()
    writer = GroupCommitWriter(engine_factory, stats)
    app = FastAPI(title="WhatsApp webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.stats = stats

    @app.get("/webhook")
    async def verify(request: Request):
        q = request.query_params
        if q.get("hub.mode") == "subscribe" and hmac.compare_digest(q.get("hub.verify_token", ""),
                                                                    secrets().verify_token):
            return PlainTextResponse(q.get("hub.challenge", ""))
        return PlainTextResponse("verification failed", status_code=403)

    @app.post("/webhook")
    async def receive(request: Request):
        raw = await request.body()
        stats.requests += 1
        header = request.headers.get("x-hub-signature-256")
        if not header:
            stats.rejected_401 += 1
            return PlainTextResponse("missing X-Hub-Signature-256", status_code=401)
        if not signature_ok(raw, header, secrets().app_secret):
            stats.rejected_403 += 1
            return PlainTextResponse("signature mismatch", status_code=403)
        try:
            events = parse_events(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as exc:
            # Signed by Meta but not understood: answer 400 so it is visible, and log the body.
            stats.bad_requests += 1
            log.error("unparseable signed webhook (%s): %s", exc, raw[:500])
            return PlainTextResponse(f"bad webhook body: {exc}", status_code=400)
        stats.events_received += len(events)
        if events:
            try:
                await writer.submit(events, raw.decode())
            except Exception:  # noqa: BLE001 - not stored: a 500 makes Meta retry later
                return PlainTextResponse("not stored, retry", status_code=500)
        return PlainTextResponse("ok")

    @app.get("/webhook/stats")
    async def webhook_stats():
        return JSONResponse(dict(stats.__dict__))

    return app
