"""ASGI app of the sandbox: Graph-API-shaped WhatsApp endpoints, admin endpoints, and a
Slack-compatible incoming webhook with a /slack page that shows what was posted.

Graph routes:   POST /{ver}/{phone_number_id}/messages      send a template message
                GET  /{ver}/{phone_number_id}               phone number status
                GET  /{ver}/{waba_id}/message_templates     templates, cursor-paged
                POST /{ver}/{waba_id}/message_templates     submit a template (status PENDING)
                GET  /{ver}/{waba_id}                       cheap health call
Admin routes:   /_sandbox/...  (faults, numbers, templates, inbound, user_preferences, ledger, webhook stats,
                reset)
Slack routes:   POST /slack/webhook/{name}, GET /slack, GET|DELETE /slack/api/posts
"""
from __future__ import annotations

import asyncio
import base64
import gc
import html
import json
import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, fields

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from include.sandbox.state import (
    ERROR_TITLES, ERROR_TYPES, GraphError, Number, Sandbox, Settings, Template, WebhookSettings,
)
from include.sandbox.webhooks import WebhookDispatcher

_encode = msgspec.json.encode


def _json(data, status: int = 200) -> Response:
    return Response(_encode(data), status_code=status, media_type="application/json")


def _graph_error(sb: Sandbox, err: GraphError) -> Response:
    status = sb.settings.http_status.get(err.code, 400)
    body = {"error": {"message": err.message, "type": ERROR_TYPES.get(err.code, "OAuthException"),
                      "code": err.code, "error_data": {"messaging_product": "whatsapp", "details": err.details
                                                       or ERROR_TITLES.get(err.code, "")},
                      "fbtrace_id": "A" + secrets.token_urlsafe(16)}}
    return _json(body, status)


async def _body_json(request: Request):
    raw = await request.body()
    try:
        return msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError as exc:
        raise GraphError(100, f"Malformed JSON body: {exc}") from None


class _BadAdminRequest(Exception):
    pass


async def _admin_json(request: Request) -> dict:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise _BadAdminRequest(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _BadAdminRequest("body must be a JSON object")
    return data


class _GcWatch:
    """The sandbox keeps every accepted message (ledger, pair buckets) for the whole run, so by 100k messages a
    full collection walks about a million objects and stalls the event loop for a few hundred ms; requests
    then reach the throughput buckets in a bunch and draw 130429s that the real API would not send. After
    each full collection the survivors are frozen (gc.freeze), so later collections never walk them again.
    Pauses are counted in the ledger stats (`gc_pauses_over_20ms`, `gc_pause_max_ms`)."""

    def __init__(self, sb: Sandbox):
        self.sb = sb
        self.started = 0.0
        self.freeze_due = False

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        ms = (time.perf_counter() - self.started) * 1000
        counters = self.sb.counters
        if ms >= 20:
            counters["gc_pauses_over_20ms"] += 1
        counters["gc_pause_max_ms"] = max(counters["gc_pause_max_ms"], round(ms))
        if info.get("generation") == 2:
            self.freeze_due = True  # not from inside the collector: on the next request

    def maybe_freeze(self) -> None:
        if self.freeze_due:
            self.freeze_due = False
            gc.freeze()


def create_app(settings: Settings | None = None, webhooks: WebhookSettings | None = None,
               seed_defaults: bool = True) -> Starlette:
    import copy

    initial = (copy.deepcopy(settings or Settings()), copy.deepcopy(webhooks or WebhookSettings()))
    sb = Sandbox(copy.deepcopy(initial[0]), copy.deepcopy(initial[1]))
    if seed_defaults:
        sb.seed_defaults()
    dispatcher = WebhookDispatcher(sb)
    gc_watch = _GcWatch(sb)

    # ---------------------------------------------------------------- Graph API
    async def send_message(request: Request) -> Response:
        gc_watch.maybe_freeze()
        pnid = request.path_params["pnid"]
        try:
            sb.check_token(request.headers.get("authorization"))
            body = await _body_json(request)
            fault = sb.transport_fault() if (sb.faults.timeout_rate or sb.faults.reset_rate) else None
            if fault == "reset":
                sb.counters["resets"] += 1
                return _Reset()
            delay = sb.latency_s()
            if delay:
                await asyncio.sleep(delay)
            result = sb.send(pnid, body)
        except GraphError as err:
            return _graph_error(sb, err)
        dispatcher.message_accepted(sb.by_wamid[result["messages"][0]["id"]])
        if fault == "timeout":
            sb.counters["timeouts"] += 1
            await asyncio.sleep(sb.faults.timeout_hang_s)  # accepted, but the caller gives up first
        return _json(result)

    async def get_object(request: Request) -> Response:
        oid = request.path_params["oid"]
        try:
            sb.check_token(request.headers.get("authorization"))
            sb.apply_scheduled_faults()
            if oid in sb.numbers:
                return _json(sb.numbers[oid].public(sb.settings.messaging_tier))
            if oid == sb.settings.waba_id:
                return _json({"id": oid, "name": "Demo Advisory WABA", "currency": "INR",
                              "timezone_id": "71", "message_template_namespace": "sandbox"})
            raise GraphError(100, f"Object with ID '{oid}' does not exist")
        except GraphError as err:
            return _graph_error(sb, err)

    async def list_templates(request: Request) -> Response:
        try:
            sb.check_token(request.headers.get("authorization"))
            sb.apply_scheduled_faults()
            if request.path_params["oid"] != sb.settings.waba_id:
                raise GraphError(100, f"Object with ID '{request.path_params['oid']}' does not exist")
            try:
                limit = max(1, min(100, int(request.query_params.get("limit", "25"))))
                after = request.query_params.get("after")
                start = int(base64.b64decode(after).decode()) if after else 0
            except (ValueError, UnicodeDecodeError):
                raise GraphError(100, "Invalid paging parameter") from None
            items = [t.public() for t in sb.templates.values()]
            page = items[start:start + limit]
            body: dict = {"data": page}
            cursors = {"before": base64.b64encode(str(start).encode()).decode(),
                       "after": base64.b64encode(str(start + len(page)).encode()).decode()}
            body["paging"] = {"cursors": cursors}
            if start + limit < len(items):
                body["paging"]["next"] = (f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
                                          f"?limit={limit}&after={cursors['after']}")
            return _json(body)
        except GraphError as err:
            return _graph_error(sb, err)

    async def create_template(request: Request) -> Response:
        try:
            sb.check_token(request.headers.get("authorization"))
            body = await _body_json(request)
            if not isinstance(body, dict) or not body.get("name") or not body.get("language"):
                raise GraphError(100, "name, language, category and components are required")
            key = (str(body["name"]), str(body["language"]))
            if key in sb.templates:
                raise GraphError(100, f"Template {key[0]} in {key[1]} already exists")
            n_params = 0
            for comp in body.get("components") or []:
                if isinstance(comp, dict) and str(comp.get("type", "")).upper() == "BODY":
                    n_params = str(comp.get("text", "")).count("{{")
            tpl = Template(key[0], key[1], status="PENDING", category=str(body.get("category", "MARKETING")),
                           body_params=n_params)
            sb.templates[key] = tpl
            return _json({"id": tpl.id, "status": tpl.status, "category": tpl.category})
        except GraphError as err:
            return _graph_error(sb, err)

    # ---------------------------------------------------------------- admin
    async def admin_health(request: Request) -> Response:
        return _json({"status": "ok", "numbers": len(sb.numbers), "templates": len(sb.templates),
                      "accepted": len(sb.ledger), "webhooks_pending": dispatcher.pending})

    async def admin_reset(request: Request) -> Response:
        """Back to the start-up state: settings, webhooks, numbers, templates, faults and ledger."""
        sb.settings = copy.deepcopy(initial[0])
        sb.webhooks = copy.deepcopy(initial[1])
        sb.reset()
        gc.unfreeze()  # the old ledger was frozen; let the collector have it
        sb.seed_defaults()
        dispatcher.clear()
        return _json({"status": "reset"})

    def _update_dataclass(obj, data: dict, allowed: set[str] | None = None) -> list[str]:
        names = {f.name for f in fields(obj)}
        unknown = [k for k in data if k not in names or (allowed is not None and k not in allowed)]
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        for k, v in data.items():
            setattr(obj, k, v)
        return sorted(data)

    async def admin_config(request: Request) -> Response:
        if request.method == "GET":
            return _json({"settings": {k: v for k, v in asdict(sb.settings).items()
                                       if k not in ("access_token", "app_secret")},
                          "webhooks": asdict(sb.webhooks)})
        data = await _admin_json(request)
        try:
            if "http_status" in data:
                data["http_status"] = {**sb.settings.http_status,
                                       **{int(k): int(v) for k, v in data["http_status"].items()}}
            web = data.pop("webhooks", None) or {}
            changed = _update_dataclass(sb.settings, data) + _update_dataclass(sb.webhooks, web)
        except (ValueError, TypeError, AttributeError) as exc:
            return _json({"error": str(exc)}, 400)
        sb.buckets.clear()
        sb.pair_buckets.clear()
        return _json({"changed": changed})

    async def admin_faults(request: Request) -> Response:
        if request.method == "GET":
            return _json(asdict(sb.faults))
        data = await _admin_json(request)
        now = time.time()
        try:
            # Relative forms are friendlier for drills: "token_expires_in_s": 5, "storm_for_s": 10 ...
            if "token_expires_in_s" in data:
                v = data.pop("token_expires_in_s")
                data["token_expires_at"] = None if v is None else now + float(v)
            if "storm_for_s" in data:
                data["storm_until"] = now + float(data.pop("storm_for_s"))
            if "template_pause_in_s" in data:
                data["template_pause_at"] = {k: now + float(v) for k, v in data.pop("template_pause_in_s").items()}
            if "quality_red_in_s" in data:
                data["quality_red_at"] = {k: now + float(v) for k, v in data.pop("quality_red_in_s").items()}
            changed = _update_dataclass(sb.faults, data)
        except (ValueError, TypeError, AttributeError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"changed": changed, "faults": asdict(sb.faults)})

    async def admin_number(request: Request) -> Response:
        pnid = request.path_params["pnid"]
        data = await _admin_json(request)
        number = sb.numbers.get(pnid)
        if number is None:
            if not data.get("display_phone_number"):
                return _json({"error": f"unknown number {pnid}; give display_phone_number to create it"}, 404)
            number = Number(pnid, data["display_phone_number"])
            sb.add_number(number)
        try:
            changed = _update_dataclass(number, data)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        sb.buckets.pop(pnid, None)
        return _json({"changed": changed, "number": number.public(sb.settings.messaging_tier)})

    async def admin_template(request: Request) -> Response:
        name = request.path_params["name"]
        data = await _admin_json(request)
        lang = data.pop("language", None)
        matches = [t for (n, lg), t in sb.templates.items() if n == name and (lang is None or lg == lang)]
        if not matches:
            if lang is None:
                return _json({"error": f"unknown template {name}; give language to create it"}, 404)
            tpl = Template(name, lang)
            sb.templates[(name, lang)] = tpl
            matches = [tpl]
        try:
            for t in matches:
                _update_dataclass(t, data)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"templates": [t.public() for t in matches]})

    async def admin_inbound(request: Request) -> Response:
        """Make recipients reply (e.g. STOP): each becomes a signed `messages` webhook."""
        data = await _admin_json(request)
        senders = data.get("from")
        if isinstance(senders, str):
            senders = [senders]
        if not senders or not data.get("text"):
            return _json({"error": "from (a phone or a list) and text are required"}, 400)
        pnid = data.get("phone_number_id") or next(iter(sb.numbers), "")
        for sender in senders:
            payload = sb.inbound_payload(sender if sender.startswith("+") else "+" + sender, data["text"], pnid)
            dispatcher.send_now(payload)
        return _json({"queued": len(senders), "callback": sb.webhooks.url or None})

    async def admin_user_preferences(request: Request) -> Response:
        """Make recipients stop (or resume) marketing messages in WhatsApp's settings: each becomes a signed
        `user_preferences` webhook, as Meta sends it."""
        data = await _admin_json(request)
        phones = data.get("wa_id") or data.get("from")
        if isinstance(phones, str):
            phones = [phones]
        value = data.get("value", "stop")
        if not phones or value not in ("stop", "resume"):
            return _json({"error": "wa_id (a phone or a list) and value 'stop' or 'resume' are required"}, 400)
        pnid = data.get("phone_number_id") or next(iter(sb.numbers), "")
        for phone in phones:
            dispatcher.send_now(sb.user_preferences_payload(phone, value, pnid))
        return _json({"queued": len(phones), "callback": sb.webhooks.url or None})

    async def admin_ledger(request: Request) -> Response:
        q = request.query_params
        return _json({"data": sb.ledger_entries(q.get("to"), q.get("key"), int(q.get("limit", 1000)),
                                                int(q.get("offset", 0)))})

    async def admin_ledger_stats(request: Request) -> Response:
        return _json(sb.ledger_stats())

    async def admin_message(request: Request) -> Response:
        entry = sb.by_wamid.get(request.path_params["wamid"])
        if entry is None:
            return _json({"error": "unknown wamid"}, 404)
        return _json(asdict(entry))

    async def admin_webhook_stats(request: Request) -> Response:
        return _json({**dispatcher.stats, "pending": dispatcher.pending})

    # ---------------------------------------------------------------- Slack
    async def slack_post(request: Request) -> Response:
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return PlainTextResponse("invalid_payload", status_code=400)
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return PlainTextResponse("no_text", status_code=400)  # what Slack answers
        sb.slack_posts.append({"received_at": time.time(), "hook": request.path_params["name"], "payload": payload})
        return PlainTextResponse("ok")

    async def slack_api_posts(request: Request) -> Response:
        if request.method == "DELETE":
            sb.slack_posts.clear()
            return _json({"deleted": True})
        return _json({"posts": sb.slack_posts})

    async def slack_page(request: Request) -> Response:
        items = []
        for post in reversed(sb.slack_posts[-500:]):
            p = post["payload"]
            lines = []
            for block in p.get("blocks") or []:
                t = block.get("text", {}).get("text") if isinstance(block.get("text"), dict) else None
                if t:
                    lines.append(html.escape(t))
                for f in block.get("fields") or []:
                    lines.append(html.escape(f.get("text", "")))
                for el in block.get("elements") or []:
                    if el.get("url"):
                        lines.append(f'<a href="{html.escape(el["url"])}">{html.escape(el["text"]["text"])}</a>')
                    elif el.get("text"):
                        lines.append(html.escape(el["text"]))
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(post["received_at"]))
            items.append(f"<article><h3>{html.escape(p.get('text', ''))}</h3><small>{when} · #{post['hook']}"
                         f"</small><pre>{'<br>'.join(lines)}</pre></article>")
        page = ("<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='10'>"
                "<title>Sandbox Slack</title><style>body{font-family:sans-serif;max-width:60em;margin:auto}"
                "article{border-bottom:1px solid #ccc;padding:.5em}pre{white-space:pre-wrap}</style></head>"
                f"<body><h1>Sandbox Slack: {len(sb.slack_posts)} posts</h1>{''.join(items) or '<p>No alerts yet.</p>'}"
                "</body></html>")
        return HTMLResponse(page)

    @asynccontextmanager
    async def lifespan(app):
        await dispatcher.start()
        gc.callbacks.append(gc_watch)
        try:
            yield
        finally:
            gc.callbacks.remove(gc_watch)
            await dispatcher.stop()

    routes = [
        Route("/_sandbox/health", admin_health),
        Route("/_sandbox/reset", admin_reset, methods=["POST"]),
        Route("/_sandbox/config", admin_config, methods=["GET", "POST"]),
        Route("/_sandbox/faults", admin_faults, methods=["GET", "POST"]),
        Route("/_sandbox/numbers/{pnid}", admin_number, methods=["POST"]),
        Route("/_sandbox/templates/{name}", admin_template, methods=["POST"]),
        Route("/_sandbox/inbound", admin_inbound, methods=["POST"]),
        Route("/_sandbox/user_preferences", admin_user_preferences, methods=["POST"]),
        Route("/_sandbox/ledger", admin_ledger),
        Route("/_sandbox/ledger/stats", admin_ledger_stats),
        Route("/_sandbox/messages/{wamid}", admin_message),
        Route("/_sandbox/webhooks/stats", admin_webhook_stats),
        Route("/slack", slack_page),
        Route("/slack/api/posts", slack_api_posts, methods=["GET", "DELETE"]),
        Route("/slack/webhook/{name:path}", slack_post, methods=["POST"]),
        Route("/{ver}/{pnid}/messages", send_message, methods=["POST"]),
        Route("/{ver}/{oid}/message_templates", list_templates, methods=["GET"]),
        Route("/{ver}/{oid}/message_templates", create_template, methods=["POST"]),
        Route("/{ver}/{oid}", get_object, methods=["GET"]),
    ]
    async def bad_admin_request(request: Request, exc: _BadAdminRequest) -> Response:
        return _json({"error": str(exc)}, 400)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={_BadAdminRequest: bad_admin_request})
    app.state.sandbox = sb
    app.state.dispatcher = dispatcher
    return app


class _Reset(Response):
    """Promise a body, send part of it and stop: the client sees the connection drop mid-response."""

    def __init__(self):
        super().__init__(b"", status_code=200)

    async def __call__(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"512")]})
        await send({"type": "http.response.body", "body": b'{"messaging_product":', "more_body": True})
        raise ConnectionResetError("sandbox fault: connection reset")
