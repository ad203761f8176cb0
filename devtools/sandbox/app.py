"""ASGI app of the sandbox: Graph-API-shaped WhatsApp endpoints, admin endpoints, and a
Slack-compatible incoming webhook with a /slack page that shows what was posted.

Graph routes:   POST /{ver}/{phone_number_id}/messages      send a template message
                GET  /{ver}/{phone_number_id}               phone number status (`fields`)
                POST /{ver}/{phone_number_id}/media         upload media (multipart)
                GET|DELETE /{ver}/{media_id}                media URL and metadata / delete
                GET  /{ver}/{waba_id}/message_templates     templates (`fields`, `limit`, `summary`, cursor-paged)
                POST /{ver}/{waba_id}/message_templates     submit a template (status PENDING)
                GET  /{ver}/{waba_id}                       WABA (`fields`; the cheap health call)
                GET  /whatsapp_business/attachments/?mid=   media download (token required)
Admin routes:   /_sandbox/...  (faults, numbers, templates, inbound, user_preferences, account_errors,
                account_alerts, ledger, webhook stats, reset); changes to templates, numbers, the messaging tier
                and timed faults emit Meta's lifecycle webhooks (lifecycle.py)
Slack routes:   POST /slack/webhook/{name}, GET /slack, GET|DELETE /slack/api/posts
PagerDuty:      POST /v2/enqueue (Events API v2), GET /_sandbox/pagerduty/events|incidents,
                POST /_sandbox/pagerduty/acknowledge (signed V3 webhook to `pagerduty_webhook_url`); pagerduty.py
"""
from __future__ import annotations

import asyncio
import base64
import gc
import json
import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, fields
from urllib.parse import urlencode

import msgspec
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from devtools.sandbox.state import (
    ERROR_TITLES, ERROR_TYPES, GraphError, Number, Sandbox, Settings, Template, WebhookSettings, unknown_field,
    unknown_object,
)
from devtools.sandbox import ai_compliance, lifecycle, pagerduty
from devtools.sandbox.webhooks import WebhookDispatcher

_encode = msgspec.json.encode


def _json(data, status: int = 200) -> Response:
    return Response(_encode(data), status_code=status, media_type="application/json")


def _graph_error(sb: Sandbox, err: GraphError) -> Response:
    """Meta's error body. Cloud API errors: {message, type, code, error_data {messaging_product, details},
    fbtrace_id}, no error_subcode from v16.0 on
    (https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes). Graph-layer
    errors (token, unknown node or field) have no error_data and may add error_subcode, is_transient,
    error_user_title and error_user_msg (https://developers.facebook.com/docs/graph-api/guides/error-handling)."""
    status = sb.settings.http_status.get(err.code, 400)
    error: dict = {"message": err.message, "type": err.error_type or ERROR_TYPES.get(err.code, "OAuthException"),
                   "code": err.code}
    if not err.graph:
        error["error_data"] = {"messaging_product": "whatsapp",
                               "details": err.details or ERROR_TITLES.get(err.code, "")}
    if err.subcode is not None:
        error["error_subcode"] = err.subcode
    if err.is_transient is not None:
        error["is_transient"] = err.is_transient
    if err.user_title is not None:
        error["error_user_title"] = err.user_title
    if err.user_msg is not None:
        error["error_user_msg"] = err.user_msg
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
    body = {"error": error}
    return _json(body, status)


async def _body_json(request: Request):
    return _decode_body(await request.body())


def _decode_body(raw: bytes):
    try:
        return msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError as exc:
        raise GraphError(100, f"Malformed JSON body: {exc}") from None


# Graph GETs return the requested `fields` plus `id`, or the node's default fields when none are named; a name the
# node does not have is (#100) "Tried accessing nonexisting field". Default field sets, from Meta's examples:
#   phone number: https://developers.facebook.com/docs/whatsapp/business-management-api/manage-phone-numbers
#     (verified_name, code_verification_status, display_phone_number, quality_rating, platform_type, throughput, id)
#   WABA: https://developers.facebook.com/docs/graph-api/reference/whats-app-business-account
#     (id, name, timezone_id, message_template_namespace)
#   templates: https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-management
#     ("Get all templates (default fields)": name, parameter_format, components, language, status, category, id)
PHONE_NUMBER_DEFAULT_FIELDS = ("verified_name", "code_verification_status", "display_phone_number",
                               "quality_rating", "platform_type", "throughput", "id")
WABA_DEFAULT_FIELDS = ("id", "name", "timezone_id", "message_template_namespace")
TEMPLATE_DEFAULT_FIELDS = ("name", "parameter_format", "components", "language", "status", "category", "id")
# summary of GET message_templates: https://developers.facebook.com/docs/graph-api/reference/whats-app-business-account/message_templates/
TEMPLATE_SUMMARY_FIELDS = ("total_count", "message_template_count", "message_template_limit",
                           "are_translations_complete")


def _requested_fields(request: Request) -> list[str] | None:
    raw = request.query_params.get("fields")
    if not raw or not raw.strip():
        return None
    return [f.strip() for f in raw.split(",") if f.strip()]


def _project(full: dict, requested: list[str] | None, default: tuple[str, ...], node_type: str) -> dict:
    out = {}
    for name in (default if requested is None else requested):
        if name not in full:
            raise unknown_field(name, node_type)
        out[name] = full[name]
    if "id" in full:
        out.setdefault("id", full["id"])
    return out


def _waba_record(sb: Sandbox) -> dict:
    return {"id": sb.settings.waba_id, "name": "Demo Advisory WABA", "timezone_id": "71",
            "message_template_namespace": "sandbox_namespace", "currency": "INR", "country": "IN",
            "account_review_status": "APPROVED", "business_verification_status": "verified",
            "ownership_type": "SELF"}


def _cursor(position: int) -> str:
    """Opaque base64 cursor, as Graph's (it points at an item; `after` pages past it, `before` stops short of it)."""
    return base64.b64encode(f"sandbox:{position}".encode()).decode()


def _cursor_position(cursor: str) -> int:
    try:
        raw = base64.b64decode(cursor, validate=True).decode()
        if not raw.startswith("sandbox:"):
            raise ValueError(raw)
        return int(raw.removeprefix("sandbox:"))
    except (ValueError, UnicodeDecodeError):
        raise GraphError(100, message="(#100) Invalid cursor", graph=True) from None


def _template_summary(sb: Sandbox, requested: str) -> dict:
    names = TEMPLATE_SUMMARY_FIELDS if requested.lower() in ("true", "1") else \
        [n.strip() for n in requested.split(",") if n.strip() in TEMPLATE_SUMMARY_FIELDS]
    languages = {t.language for t in sb.templates.values()}
    by_name: dict[str, set[str]] = {}
    for t in sb.templates.values():
        by_name.setdefault(t.name, set()).add(t.language)
    values = {"total_count": len(sb.templates), "message_template_count": len(by_name),
              "message_template_limit": sb.settings.message_template_limit,
              "are_translations_complete": all(langs >= languages for langs in by_name.values())}
    return {n: values[n] for n in names}


def _media_public(request: Request, item) -> dict:
    """GET /{media-id}: {messaging_product, url, mime_type, sha256, file_size, id}; the URL is the sandbox's own
    download route (Meta's is lookaside.fbsbx.com, valid 5 minutes, token required)
    (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media#get-media-url)."""
    url = f"{request.url.scheme}://{request.url.netloc}/whatsapp_business/attachments/?mid={item.id}&ext={int(time.time())}"
    return {"messaging_product": "whatsapp", "url": url, "mime_type": item.mime_type, "sha256": item.sha256,
            "file_size": str(len(item.data)), "id": item.id}


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


def create_app(settings: Settings | None = None, webhooks: WebhookSettings | None = None, seed_defaults: bool = True,
               smtp_port: int | None = None, smtp_host: str = "127.0.0.1") -> _MessagesFastPath:
    """`smtp_port`: also run the SMTP sink (smtp_sink.py) on `smtp_host` at that port (0: any free port)."""
    import copy

    from devtools.sandbox.smtp_sink import MailSink
    from devtools.sandbox.smtp_sink import routes as mail_routes

    initial = (copy.deepcopy(settings or Settings()), copy.deepcopy(webhooks or WebhookSettings()))
    sb = Sandbox(copy.deepcopy(initial[0]), copy.deepcopy(initial[1]))
    if seed_defaults:
        sb.seed_defaults()
    dispatcher = WebhookDispatcher(sb)
    sb.webhook_sink = dispatcher.send_now  # lifecycle webhooks (template, quality, number changes) go out signed
    gc_watch = _GcWatch(sb)
    mail = MailSink()  # advisor delay-notice emails (smtp_sink.py)

    # ---------------------------------------------------------------- Graph API
    async def send_message(pnid: str, authorization: str | None, raw: bytes) -> Response:
        """POST /{ver}/{phone_number_id}/messages, served by `_MessagesFastPath` (below) without Starlette's
        routing and request objects."""
        gc_watch.maybe_freeze()
        try:
            sb.check_token(authorization)
            body = _decode_body(raw)
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

    def _debug_token(sb, input_token: str | None) -> dict:
        """GET /debug_token?input_token=...: the token's metadata as Graph documents it
        (https://developers.facebook.com/docs/facebook-login/guides/access-tokens/debugging); `expires_at` 0 means
        never (a system-user token) unless a `token_expires_at` fault is set."""
        if not input_token:
            raise GraphError(100, message="(#100) The parameter input_token is required", graph=True)
        valid = secrets.compare_digest(input_token, sb.settings.access_token)
        expires = sb.faults.token_expires_at
        return {"data": {"app_id": "100000000000000", "type": "SYSTEM_USER", "application": "Advisor Content Sandbox",
                         "data_access_expires_at": 0, "expires_at": int(expires) if expires else 0,
                         "is_valid": valid and not (expires and time.time() >= expires),
                         "scopes": ["whatsapp_business_management", "whatsapp_business_messaging"],
                         "granular_scopes": [], "user_id": "100000000000001"}}

    async def get_object(request: Request) -> Response:
        oid = request.path_params["oid"]
        try:
            sb.check_token(request.headers.get("authorization"))
            sb.apply_scheduled_faults()
            requested = _requested_fields(request)
            if oid == "debug_token":
                return _json(_debug_token(sb, request.query_params.get("input_token")))
            if oid in sb.numbers:
                return _json(_project(sb.numbers[oid].public(sb.settings.messaging_tier), requested,
                                      PHONE_NUMBER_DEFAULT_FIELDS, "WhatsAppBusinessPhoneNumber"))
            if oid == sb.settings.waba_id:
                return _json(_project(_waba_record(sb), requested, WABA_DEFAULT_FIELDS, "WhatsAppBusinessAccount"))
            if oid in sb.media:
                item = sb.media_item(oid, request.query_params.get("phone_number_id"))
                return _json(_media_public(request, item))
            raise unknown_object(oid)
        except GraphError as err:
            return _graph_error(sb, err)

    async def delete_object(request: Request) -> Response:
        """DELETE /{media-id} -> {"success": true}
        (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media#delete-media)."""
        oid = request.path_params["oid"]
        try:
            sb.check_token(request.headers.get("authorization"))
            item = sb.media_item(oid, request.query_params.get("phone_number_id"), "delete")
            del sb.media[item.id]
            return _json({"success": True})
        except GraphError as err:
            return _graph_error(sb, err)

    async def upload_media(request: Request) -> Response:
        """POST /{phone-number-id}/media, multipart/form-data with file, type and messaging_product -> {"id"}
        (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media#upload-media)."""
        pnid = request.path_params["pnid"]
        try:
            sb.check_token(request.headers.get("authorization"))
            if not request.headers.get("content-type", "").startswith("multipart/form-data"):
                raise GraphError(131008, "Upload media as multipart/form-data with file, type and messaging_product")
            async with request.form(max_files=1, max_fields=16) as form:
                upload = form.get("file")
                data = await upload.read() if isinstance(upload, UploadFile) else None
                declared = form.get("type")
                mime = declared if isinstance(declared, str) and declared else (
                    upload.content_type if isinstance(upload, UploadFile) else None)
                product = form.get("messaging_product")
                item = sb.upload_media(pnid, product if isinstance(product, str) else None, mime, data)
            return _json({"id": item.id})
        except GraphError as err:
            return _graph_error(sb, err)

    async def download_media(request: Request) -> Response:
        """The media URL's bytes; like Meta's, it needs the access token and answers 404 when the media is gone."""
        try:
            sb.check_token(request.headers.get("authorization"))
        except GraphError as err:
            return _graph_error(sb, err)
        item = sb.media.get(request.query_params.get("mid", ""))
        if item is None:
            return PlainTextResponse("Not Found", status_code=404)
        return Response(item.data, media_type=item.mime_type)

    async def list_templates(request: Request) -> Response:
        """GET /{waba-id}/message_templates: `fields`, `limit`, `summary`, cursor paging with `before`/`after` and
        `previous`/`next` links that keep the query (https://developers.facebook.com/docs/graph-api/results,
        https://developers.facebook.com/docs/graph-api/reference/whats-app-business-account/message_templates/)."""
        try:
            sb.check_token(request.headers.get("authorization"))
            sb.apply_scheduled_faults()
            oid = request.path_params["oid"]
            if oid != sb.settings.waba_id:
                raise unknown_object(oid)
            q = request.query_params
            requested = _requested_fields(request)
            try:
                limit = int(q.get("limit", "25"))
                if limit < 1:
                    raise ValueError(limit)
            except ValueError:
                raise GraphError(100, message="(#100) Param limit must be a positive integer", graph=True) from None
            limit = min(limit, 100)
            items = list(sb.templates.values())
            if q.get("after"):
                start = _cursor_position(q["after"]) + 1
                end = start + limit
            elif q.get("before"):
                end = _cursor_position(q["before"])
                start = max(0, end - limit)
            else:
                start, end = 0, limit
            page = items[start:end]
            body: dict = {"data": [_project(t.public(), requested, TEMPLATE_DEFAULT_FIELDS, "WhatsAppMessageTemplate")
                                   for t in page]}
            if page:
                cursors = {"before": _cursor(start), "after": _cursor(start + len(page) - 1)}
                paging: dict = {"cursors": cursors}
                kept = [(k, v) for k, v in q.multi_items() if k not in ("after", "before")]
                base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}?"
                if start > 0:
                    paging["previous"] = base + urlencode([*kept, ("before", cursors["before"])])
                if start + len(page) < len(items):
                    paging["next"] = base + urlencode([*kept, ("after", cursors["after"])])
                body["paging"] = paging
            if q.get("summary") and q["summary"].lower() not in ("false", "0"):
                body["summary"] = _template_summary(sb, q["summary"])
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
                # Template-creation errors carry error_subcode, is_transient and the user-facing title and message
                # (Graph error fields: https://developers.facebook.com/docs/graph-api/guides/error-handling;
                # subcode 2388024 "Template name already exists", as quoted from Meta's error-code reference).
                raise GraphError(100, f"Message template \"{key[0]}\" already exists in {key[1]}",
                                 "Invalid parameter", subcode=2388024, is_transient=False,
                                 user_title="Message template already exists",
                                 user_msg=f"There is already {key[1]} content for this template. Create a new "
                                          "template and try again.")
            n_params, header = 0, "NONE"
            for comp in body.get("components") or []:
                if isinstance(comp, dict) and str(comp.get("type", "")).upper() == "BODY":
                    n_params = str(comp.get("text", "")).count("{{")
                if isinstance(comp, dict) and str(comp.get("type", "")).upper() == "HEADER":
                    header = str(comp.get("format", "TEXT")).upper()
            tpl = Template(key[0], key[1], status="PENDING", category=str(body.get("category", "MARKETING")),
                           body_params=n_params, header=header, quality_score="UNKNOWN",
                           parameter_format=str(body.get("parameter_format", "POSITIONAL")).upper())
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
        mail.clear()
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
                                       if k not in ("access_token", "app_secret", "pagerduty_webhook_secrets")},
                          "webhooks": asdict(sb.webhooks)})
        data = await _admin_json(request)
        try:
            if "http_status" in data:
                data["http_status"] = {**sb.settings.http_status,
                                       **{int(k): int(v) for k, v in data["http_status"].items()}}
            web = data.pop("webhooks", None) or {}
            old_tier = sb.settings.messaging_tier
            changed = _update_dataclass(sb.settings, data) + _update_dataclass(sb.webhooks, web)
        except (ValueError, TypeError, AttributeError) as exc:
            return _json({"error": str(exc)}, 400)
        sb.buckets.clear()
        sb.pair_buckets.clear()
        # A new portfolio messaging limit: phone_number_quality_update UPGRADE / DOWNGRADE for every number.
        lifecycle.messaging_tier_changed(sb, old_tier, sb.settings.messaging_tier)
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
        dispatcher.kick()  # the dispatcher's clock fires timed faults (and their webhooks) when due
        return _json({"changed": changed, "faults": asdict(sb.faults)})

    async def admin_number(request: Request) -> Response:
        """Change a number. A quality rating reaching or leaving RED emits phone_number_quality_update FLAGGED /
        UNFLAGGED, a throughput level reaching HIGH emits THROUGHPUT_UPGRADE (lifecycle.py)."""
        pnid = request.path_params["pnid"]
        data = await _admin_json(request)
        rating, level = data.pop("quality_rating", None), data.pop("throughput_level", None)
        if rating is not None and rating not in lifecycle.NUMBER_QUALITY:
            return _json({"error": f"quality_rating must be one of {', '.join(lifecycle.NUMBER_QUALITY)}"}, 400)
        if level is not None and level not in lifecycle.THROUGHPUT_MPS:
            return _json({"error": f"throughput_level must be one of {', '.join(lifecycle.THROUGHPUT_MPS)}"}, 400)
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
        if rating is not None:
            lifecycle.set_number_quality(sb, number, rating)
            changed.append("quality_rating")
        if level is not None:
            lifecycle.set_throughput(sb, number, level)
            changed.append("throughput_level")
        sb.buckets.pop(pnid, None)
        return _json({"changed": changed, "number": number.public(sb.settings.messaging_tier)})

    async def admin_template(request: Request) -> Response:
        """Change (or create) a template. A status change emits message_template_status_update (with `reason`
        when given, e.g. a rejection reason), a quality change message_template_quality_update (lifecycle.py)."""
        name = request.path_params["name"]
        data = await _admin_json(request)
        lang = data.pop("language", None)
        status, quality, reason = data.pop("status", None), data.pop("quality_score", None), data.pop("reason", None)
        if status is not None and status not in lifecycle.TEMPLATE_STATUSES:
            return _json({"error": f"status must be one of {', '.join(lifecycle.TEMPLATE_STATUSES)}"}, 400)
        if quality is not None and quality not in lifecycle.QUALITY_SCORES:
            return _json({"error": f"quality_score must be one of {', '.join(lifecycle.QUALITY_SCORES)}"}, 400)
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
        for t in matches:
            if status is not None:
                lifecycle.set_template_status(sb, t, status, reason=reason)
            if quality is not None:
                lifecycle.set_template_quality(sb, t, quality)
        return _json({"templates": [t.public() for t in matches]})

    async def admin_inbound(request: Request) -> Response:
        """Make recipients reply: each becomes a signed `messages` webhook. `type` "text" (default; `text` is
        the body), "button" (a template quick-reply button: `text` its label, `payload` its payload, e.g.
        "Stop promotions") or "interactive" (`text` the reply's title, `id` its id, `interactive_type`
        "button_reply" (default) or "list_reply" with `description`)."""
        data = await _admin_json(request)
        senders = data.get("from")
        if isinstance(senders, str):
            senders = [senders]
        kind = data.get("type", "text")
        if not senders or not data.get("text"):
            return _json({"error": "from (a phone or a list) and text are required"}, 400)
        if kind not in ("text", "button", "interactive") or \
                data.get("interactive_type", "button_reply") not in ("button_reply", "list_reply"):
            return _json({"error": "type must be text, button or interactive (button_reply or list_reply)"}, 400)
        reply = {k: data[v] for k, v in (("payload", "payload"), ("reply_id", "id"), ("description", "description"),
                                         ("interactive_type", "interactive_type")) if v in data}
        pnid = data.get("phone_number_id") or next(iter(sb.numbers), "")
        for sender in senders:
            payload = sb.inbound_payload(sender if sender.startswith("+") else "+" + sender, data["text"], pnid,
                                         kind=kind, **reply)
            dispatcher.send_now(payload)
        return _json({"queued": len(senders), "callback": sb.webhooks.url or None})

    async def admin_account_error(request: Request) -> Response:
        """An app- or account-level error, as Meta reports it in value.errors[] of a `messages` webhook
        (`code`, `title`, `details`; default 130429 "Rate limit hit", the reference's example)."""
        data = await _admin_json(request)
        try:
            code = int(data.get("code", 130429))
        except (TypeError, ValueError):
            return _json({"error": "code must be an integer"}, 400)
        title = str(data.get("title") or ERROR_TITLES.get(code, "Error"))
        details = data.get("details") or ("Message failed to send because there were too many messages sent from "
                                          "this phone number in a short period of time" if code == 130429 else None)
        number = sb.numbers.get(data.get("phone_number_id") or next(iter(sb.numbers), ""))
        dispatcher.send_now(sb._envelope(lifecycle.account_error_value(code, title, details), number))
        return _json({"queued": 1, "callback": sb.webhooks.url or None})

    async def admin_account_alert(request: Request) -> Response:
        """An `account_alerts` webhook (messaging-limit increase deferred or denied, Official Business Account
        decisions, profile photo lost). Defaults are the reference's example."""
        data = await _admin_json(request)
        value = lifecycle.account_alert_value(
            str(data.get("entity_type", "BUSINESS")), str(data.get("entity_id", sb.settings.waba_id)),
            str(data.get("alert_type", "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED")),
            str(data.get("alert_severity", "WARNING")), str(data.get("alert_status", "ACTIVE")),
            str(data.get("alert_description", "Limits cannot be increased for your business Demo Advisory. Use "
                                              "WhatsApp Business platform actively for several days and follow our "
                                              "messaging policies.")))
        dispatcher.send_now(lifecycle.lifecycle_envelope(sb, "account_alerts", value))
        return _json({"queued": 1, "callback": sb.webhooks.url or None})

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
        return _json({**dispatcher.stats, "pending": dispatcher.pending, "not_due": dispatcher.not_due})

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
        from devtools.sandbox.slack_render import page

        posts = [{**post, "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(post["received_at"]))}
                 for post in reversed(sb.slack_posts[-500:])]
        return HTMLResponse(page(posts, len(sb.slack_posts)))

    @asynccontextmanager
    async def lifespan(app):
        await dispatcher.start()
        if smtp_port is not None:
            await mail.start(smtp_host, smtp_port)
        gc.callbacks.append(gc_watch)
        try:
            yield
        finally:
            gc.callbacks.remove(gc_watch)
            await mail.stop()
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
        Route("/_sandbox/account_errors", admin_account_error, methods=["POST"]),
        Route("/_sandbox/account_alerts", admin_account_alert, methods=["POST"]),
        Route("/_sandbox/ledger", admin_ledger),
        Route("/_sandbox/ledger/stats", admin_ledger_stats),
        Route("/_sandbox/messages/{wamid}", admin_message),
        Route("/_sandbox/webhooks/stats", admin_webhook_stats),
        Route("/slack", slack_page),
        Route("/slack/api/posts", slack_api_posts, methods=["GET", "DELETE"]),
        Route("/slack/webhook/{name:path}", slack_post, methods=["POST"]),
        *pagerduty.routes(sb),   # Events API v2 /v2/enqueue and /_sandbox/pagerduty/* (pagerduty.py)
        *mail_routes(mail),      # SMTP sink: GET|DELETE /_sandbox/mail, POST /_sandbox/mail/faults (smtp_sink.py)
        *ai_compliance.routes(sb),  # OpenAI-compatible /v1/chat/completions and /_sandbox/ai (ai_compliance.py)
        Route("/whatsapp_business/attachments/", download_media, methods=["GET"]),
        # POST /{ver}/{pnid}/messages: _MessagesFastPath, in front of these routes
        Route("/{ver}/{pnid}/media", upload_media, methods=["POST"]),
        Route("/{ver}/{oid}/message_templates", list_templates, methods=["GET"]),
        Route("/{ver}/{oid}/message_templates", create_template, methods=["POST"]),
        Route("/{ver}/{oid}", get_object, methods=["GET"]),
        Route("/{ver}/{oid}", delete_object, methods=["DELETE"]),
    ]
    async def bad_admin_request(request: Request, exc: _BadAdminRequest) -> Response:
        return _json({"error": str(exc)}, 400)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={_BadAdminRequest: bad_admin_request})
    app.state.sandbox = sb
    app.state.dispatcher = dispatcher
    app.state.mail = mail
    return _MessagesFastPath(app, send_message)


class _MessagesFastPath:
    """The message send, the one route taken 1,000 times a second, answered straight from ASGI: Starlette's
    middleware, route matching (a linear scan of ~50 routes) and request objects were about half of the
    sandbox's CPU per send (py-spy at 1 x 1,000 msg/s), and the sandbox shares the cores with what it measures.
    Everything else goes to the Starlette app, whose attributes (`state`) this passes through."""

    def __init__(self, app: Starlette, send_message):
        self.app = app
        self.send_message = send_message

    def __getattr__(self, name):
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            parts = scope["path"].split("/")
            if len(parts) == 4 and parts[3] == "messages" and parts[1] and parts[2] and not parts[0]:
                authorization = None
                for name, value in scope["headers"]:
                    if name == b"authorization":
                        authorization = value.decode("latin-1")
                        break
                chunks = []
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body"):
                        break
                response = await self.send_message(parts[2], authorization, b"".join(chunks))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Reset(Response):
    """Promise a body, send part of it and stop: the client sees the connection drop mid-response."""

    def __init__(self):
        super().__init__(b"", status_code=200)

    async def __call__(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"512")]})
        await send({"type": "http.response.body", "body": b'{"messaging_product":', "more_body": True})
        raise ConnectionResetError("sandbox fault: connection reset")
