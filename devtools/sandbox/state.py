"""The sandbox's model of WhatsApp: numbers, templates, limits, faults, research mode and the ledger.

Transport-free: app.py turns HTTP requests into calls here, and tests can drive it directly.
Codes and shapes follow Meta's Cloud API documentation (see shared/reference/whatsapp-cloud-api.md).
"""
from __future__ import annotations

import hashlib
import itertools
import math
import os
import random
import secrets
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from devtools.sandbox.ai_compliance import AIState
from devtools.sandbox.pagerduty import PagerDutyState
from include.delivery.ratelimit import RollingUniqueCounter, TokenBucket
from include.whatsapp.platform_limits import THROUGHPUT_MPS, TIER_LIMITS


# Default HTTP status per Graph error code (configurable at run time through /_sandbox/config `http_status`).
# Meta's current error-code page has no status column and says to build error handling "around error codes
# instead of subcodes or HTTP response status codes"
# (https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes), so the client
# never relies on these. The values come from the "HTTP Status Code" column of Meta's earlier Cloud API error-code
# table (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes), as quoted by:
#   * developers.aivo.co/engage (mirror of that table): 0 and 190 -> 401, 3 -> 500, 10 and 200-299 -> 403
#   * heltar.com/blogs (error codes 80007, 130429, 131056): "accompanied by a 400 Bad Request status"
#   * help.chakrahq.com (throttling errors): code 4 "HTTP Status: 400 Bad Request" (aivo's copy says 429: the
#     sources disagree, so it stays configurable)
#   * docs.360dialog.com/partner/.../error-messages (Meta integrity errors): 368 -> "403 - Forbidden"
#   * help.gohighlevel.com: 131000 -> 500; learn.doubletick.io: 131016 -> 503; 132001 -> 404 Not Found
# Everything else in the table (parameter, recipient and template errors) is 400 Bad Request.
DEFAULT_HTTP_STATUS = {
    0: 401, 3: 500, 10: 403, 190: 401, **{c: 403 for c in range(200, 300)},
    4: 400, 80007: 400, 130429: 400, 131048: 400, 131056: 400,
    368: 403, 131031: 403, 131005: 403,
    1: 400, 2: 503, 33: 400, 100: 400, 131000: 500, 131016: 503, 131057: 500,
    131008: 400, 131009: 400, 131021: 400, 131026: 400, 131042: 400, 131045: 400, 131047: 400, 131049: 400,
    131050: 400, 131051: 400, 131052: 400, 131053: 400,
    132000: 400, 132001: 404, 132005: 400, 132007: 400, 132012: 400, 132015: 400, 132016: 400, 133010: 400,
}
ERROR_TITLES = {
    4: "Application request limit reached", 80007: "Rate limit issues", 130429: "Rate limit hit",
    131056: "(Business Account, Consumer Account) pair rate limit hit", 190: "Access token has expired",
    368: "Temporarily blocked for policies violations", 100: "Invalid parameter", 131000: "Something went wrong",
    131016: "Service unavailable", 131026: "Message undeliverable", 131047: "Re-engagement message",
    131048: "Spam rate limit hit", 131049: "Meta chose not to deliver", 131050: "User has stopped marketing messages",
    131051: "Unsupported message type", 132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation", 132015: "Template is paused",
    132016: "Template is disabled", 133010: "Phone number not registered",
    131008: "Required parameter is missing", 131009: "Parameter value is not valid", 131053: "Media upload error",
}
ERROR_TYPES = {190: "OAuthException", 4: "OAuthException", 130429: "OAuthException", 100: "OAuthException"}

# Research mode (after GOV.UK Notify's magic numbers): recipients under this prefix have a fixed
# outcome chosen by their last digit.
RESEARCH_OUTCOMES = {
    "1": "delivered",        # sent, delivered; never read
    "2": "read_at_once",     # sent, read; the delivered event is skipped, as Meta may do
    "3": "permanent_fail",   # accepted, then a failed webhook with 131026
    "4": "temporary_fail",   # the API answers 131016 to the first two attempts, then accepts
    "5": "delivered_late",   # delivered only after `late_delivery_s`
    "6": "opted_out",        # the API refuses at once with 131050 (user stopped marketing messages)
    "7": "undeliverable",    # the API refuses at once with 131026
    "8": "opted_out_late",   # accepted, then a failed webhook with 131050 (stopped marketing messages)
}


class GraphError(Exception):
    """A Graph API error. WhatsApp (Cloud API) errors carry `error_data` {messaging_product, details}; errors of the
    Graph layer itself (token, unknown node or field) do not, and may carry `error_subcode`, `error_user_title`,
    `error_user_msg` and `is_transient` (https://developers.facebook.com/docs/graph-api/guides/error-handling)."""

    def __init__(self, code: int, details: str = "", message: str | None = None, *, graph: bool = False,
                 error_type: str | None = None, subcode: int | None = None, user_title: str | None = None,
                 user_msg: str | None = None, is_transient: bool | None = None):
        self.code = code
        self.details = details
        self.message = message or f"({'#'}{code}) {ERROR_TITLES.get(code, 'Error')}"
        self.graph = graph
        self.error_type = error_type
        self.subcode = subcode
        self.user_title = user_title
        self.user_msg = user_msg
        self.is_transient = is_transient
        super().__init__(self.message)


def unknown_object(oid: str, method: str = "get") -> GraphError:
    """Graph's answer for an ID it cannot load (public reference payloads: type GraphMethodException, code 100,
    error_subcode 33, no error_data)."""
    return GraphError(100, message=f"Unsupported {method} request. Object with ID '{oid}' does not exist, cannot be "
                                   "loaded due to missing permissions, or does not support this operation. Please "
                                   "read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
                      graph=True, error_type="GraphMethodException", subcode=33)


def unknown_field(field_name: str, node_type: str) -> GraphError:
    """`fields` naming a field the node does not have: "(#100) Tried accessing nonexisting field (x) on node type
    (T)", type OAuthException, HTTP 400 (public reference payloads of Graph API clients)."""
    return GraphError(100, message=f"(#100) Tried accessing nonexisting field ({field_name}) on node type "
                                   f"({node_type})", graph=True, error_type="OAuthException")


# Supported media types and maximum sizes for uploads
# (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media#supported-media-types).
_MB = 1024 * 1024
MEDIA_MAX_BYTES = {
    "audio/aac": 16 * _MB, "audio/amr": 16 * _MB, "audio/mpeg": 16 * _MB, "audio/mp4": 16 * _MB,
    "audio/ogg": 16 * _MB,
    "text/plain": 100 * _MB, "application/pdf": 100 * _MB, "application/vnd.ms-excel": 100 * _MB,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": 100 * _MB,
    "application/msword": 100 * _MB,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": 100 * _MB,
    "application/vnd.ms-powerpoint": 100 * _MB,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": 100 * _MB,
    "image/jpeg": 5 * _MB, "image/png": 5 * _MB,
    "image/webp": 500 * 1024,  # stickers only
    "video/3gpp": 16 * _MB, "video/mp4": 16 * _MB,
}
# Magic numbers the sandbox checks, so that a mismatched MIME type fails as Meta's media processor does (131053).
_MEDIA_MAGIC = {"image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",),
                "application/pdf": (b"%PDF",)}


@dataclass
class Number:
    phone_number_id: str
    display_phone_number: str
    quality_rating: str = "GREEN"
    status: str = "CONNECTED"
    throughput_level: str = "STANDARD"
    verified_name: str = "Demo Advisory"
    policy_blocked: bool = False

    def public(self, tier: str) -> dict:
        """Every field the sandbox models, under Meta's names; GET /{phone-number-id} projects it by `fields`
        (app.py). `whatsapp_business_manager_messaging_limit` is the portfolio's messaging limit (v24.0+);
        `messaging_limit_tier` is deprecated and served only when asked for by name
        (https://developers.facebook.com/documentation/business-messaging/whatsapp/messaging-limits#via-api)."""
        return {"verified_name": self.verified_name, "code_verification_status": "VERIFIED",
                "display_phone_number": self.display_phone_number, "quality_rating": self.quality_rating,
                "platform_type": "CLOUD_API", "throughput": {"level": self.throughput_level},
                "id": self.phone_number_id, "status": self.status, "name_status": "APPROVED",
                "account_mode": "LIVE", "is_official_business_account": False,
                "whatsapp_business_manager_messaging_limit": tier, "messaging_limit_tier": tier}


@dataclass
class Template:
    name: str
    language: str
    status: str = "APPROVED"
    category: str = "MARKETING"
    quality_score: str = "GREEN"
    body_params: int = 3
    header: str = "IMAGE"
    id: str = field(default_factory=lambda: str(10**15 + secrets.randbelow(10**15)))
    parameter_format: str = "POSITIONAL"
    quality_date: int = field(default_factory=lambda: int(time.time()))

    def public(self) -> dict:
        """Every field the sandbox models, in the order of Meta's template list examples; GET message_templates
        projects it by `fields` (default: name, parameter_format, components, language, status, category, id).
        Shapes: https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-management
        (components with `example.header_handle` / `example.body_text`); `quality_score` {score, date}: Graph
        reference whats-app-business-hsm and messagebird/java-rest-api HSMQualityScore (score, date, reasons)."""
        comps: list[dict] = []
        if self.header and self.header != "NONE":
            header: dict[str, Any] = {"type": "HEADER", "format": self.header}
            if self.header in ("IMAGE", "VIDEO", "DOCUMENT"):
                header["example"] = {"header_handle": [
                    f"https://scontent.whatsapp.net/v/t61.29466-34/sandbox_{self.id}_n.png"]}
            comps.append(header)
        body: dict[str, Any] = {"type": "BODY", "text": " ".join(f"{{{{{i}}}}}" for i in range(1, self.body_params + 1))
                                or f"{self.name} (no variables)"}
        if self.body_params:
            body["example"] = {"body_text": [[f"sample {i}" for i in range(1, self.body_params + 1)]]}
        comps.append(body)
        return {"name": self.name, "parameter_format": self.parameter_format, "components": comps,
                "language": self.language, "status": self.status, "category": self.category, "id": self.id,
                "quality_score": {"score": self.quality_score, "date": self.quality_date},
                "rejected_reason": "NONE"}


@dataclass
class Faults:
    latency_ms_median: float = 0.0
    latency_ms_p99: float = 0.0
    error_5xx_rate: float = 0.0
    timeout_rate: float = 0.0          # accepted, then the response hangs past the client's timeout
    timeout_hang_s: float = 30.0
    reset_rate: float = 0.0            # connection dropped mid-response, message not accepted
    storm_rate: float = 0.0            # fraction of sends answered 130429 while the storm lasts
    storm_until: float = 0.0
    token_expires_at: float | None = None
    template_pause_at: dict[str, float] = field(default_factory=dict)
    quality_red_at: dict[str, float] = field(default_factory=dict)
    # Template pacing: this fraction of the sends of the named templates (all templates when the list is empty) is
    # accepted with messages[0].message_status "held_for_quality_assessment" instead of "accepted"
    # (https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-pacing).
    pacing_rate: float = 0.0
    pacing_templates: list[str] = field(default_factory=list)
    # PagerDuty Events API (devtools/sandbox/pagerduty.py): answer the next N events with 429 / 500.
    pagerduty_429_next: int = 0
    pagerduty_5xx_next: int = 0


@dataclass
class WebhookSettings:
    url: str = ""
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    # Notifications already due that go out in one POST (Meta aggregates up to 1,000, unguaranteed): 1 = each alone
    # (the tests' default, the receiver's worst case); the dev stack sets SANDBOX_WEBHOOK_BATCH_MAX.
    batch_max: int = 1
    sent_delay_s: float = 0.05
    delivered_delay_s: float = 0.3
    read_delay_s: float = 1.0
    read_rate: float = 0.7
    late_delivery_s: float = 600.0
    max_attempts: int = 8
    retry_base_s: float = 0.5
    # The app's webhook version: v23.0 and older still carry `conversation` in statuses (lifecycle.status_value).
    version: str = "v25.0"
    # phone_number_quality_update current_limit / old_limit, which Meta removes in February 2026.
    legacy_limit_fields: bool = False


@dataclass
class Settings:
    access_token: str = "sandbox-token"
    app_secret: str = "sandbox-secret"
    waba_id: str = "200000000000001"
    limits_enabled: bool = True
    burst_seconds: float = 0.2         # per-number bucket depth, in seconds of throughput
    pair_interval_s: float = 6.0
    pair_burst: int = 45
    messaging_tier: str = "TIER_100K"
    tier_exceeded_code: int = 131049
    research_prefix: str = "+9199000000"
    http_status: dict[int, int] = field(default_factory=lambda: dict(DEFAULT_HTTP_STATUS))
    seed: int = 7
    # summary.message_template_limit of GET message_templates: "A WhatsApp Business account can have up to 250
    # message templates" (https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes,
    # 2388019); configurable because Meta raises it for some accounts.
    message_template_limit: int = 250
    # PagerDuty V3 webhooks (devtools/sandbox/pagerduty.py): where `incident.acknowledged` goes (none when empty)
    # and the subscription's signing secrets (one v1= signature each, as during a secret rotation).
    pagerduty_webhook_url: str = ""
    pagerduty_webhook_secrets: list[str] = field(default_factory=lambda: ["sandbox-pagerduty-webhook-secret"])


@dataclass
class LedgerEntry:
    wamid: str
    to: str
    phone_number_id: str
    template: str
    language: str
    body_params: list[str]
    header_image: str | None
    biz_opaque_callback_data: str | None
    accepted_at: float
    statuses: list[tuple[str, float]] = field(default_factory=list)
    message_status: str = "accepted"   # or "held_for_quality_assessment" under template pacing


@dataclass
class MediaItem:
    id: str
    phone_number_id: str
    mime_type: str
    data: bytes = field(repr=False)
    sha256: str
    uploaded_at: float


def _now() -> float:
    return time.time()


class Sandbox:
    """All mutable sandbox state. Single event loop, so no locking is needed."""

    def __init__(self, settings: Settings | None = None, webhooks: WebhookSettings | None = None):
        self.settings = settings or Settings()
        self.webhooks = webhooks or WebhookSettings()
        self.webhook_sink = None  # set by the app: lifecycle webhooks go to the dispatcher (lifecycle.emit)
        self._resets = -1  # resets so far; part of every wamid (reset)
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        self.rng = random.Random(self.settings.seed)
        self.numbers: dict[str, Number] = {}
        self.templates: dict[tuple[str, str], Template] = {}
        self.faults = Faults()
        self.ledger: list[LedgerEntry] = []
        self.by_wamid: dict[str, LedgerEntry] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self.pair_buckets: dict[tuple[str, str], TokenBucket] = {}
        self.portfolio = RollingUniqueCounter()
        self.attempts_by_recipient: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self.slack_posts: list[dict] = []
        self.inbound: list[dict] = []
        self.preferences: list[dict] = []
        self._wamid_seq = itertools.count(1)
        # Meta never reuses a wamid. The reset count is part of each one, so a status webhook of a previous test
        # still on its way to a receiver can never match a message of the next test in the same sandbox process.
        self._resets += 1
        self.template_pauses: Counter[tuple[str, str]] = Counter()  # FIRST_PAUSE / SECOND_PAUSE (lifecycle.py)
        self.media: dict[str, MediaItem] = {}
        self.pagerduty = PagerDutyState()
        self.ai = AIState()  # OpenAI-compatible compliance reviews (ai_compliance.py)

    def seed_defaults(self) -> None:
        """The demo world's five numbers and four approved templates (mirrors devtools/demo_world.py)."""
        for i in range(1, 6):
            self.add_number(Number(f"10000000000000{i}", f"+91800000000{i}"))
        for name, lang in (("daily_pack_v1", "en"), ("daily_pack_v2", "en"),
                           ("daily_pack_hi_v1", "hi"), ("daily_pack_hi_v2", "hi"), ("canary_ping", "en")):
            self.templates[(name, lang)] = Template(name, lang, body_params=0 if name == "canary_ping" else 3)

    def add_number(self, number: Number) -> None:
        self.numbers[number.phone_number_id] = number
        self.buckets.pop(number.phone_number_id, None)

    # -- auth and time-based faults ---------------------------------------------------------------
    def check_token(self, authorization: str | None) -> None:
        token = (authorization or "").removeprefix("Bearer ").strip()
        # Graph-layer errors: no error_data; an expired session carries error_subcode 463
        # (https://developers.facebook.com/docs/graph-api/guides/error-handling, "Authentication error subcodes").
        if not token or not secrets.compare_digest(token, self.settings.access_token):
            raise GraphError(190, message="Invalid OAuth access token - Cannot parse access token", graph=True,
                             error_type="OAuthException")
        if self.faults.token_expires_at is not None and _now() >= self.faults.token_expires_at:
            when = time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(self.faults.token_expires_at))
            raise GraphError(190, message=f"Error validating access token: Session has expired on {when}.",
                             graph=True, error_type="OAuthException", subcode=463)

    def apply_scheduled_faults(self) -> None:
        """Fire the timed faults that are due, each with its lifecycle webhook (message_template_status_update
        PAUSED, phone_number_quality_update FLAGGED) stamped with the time it was due. Called on requests and by
        the webhook dispatcher's clock, so a fault fires on time even when no request arrives."""
        from devtools.sandbox import lifecycle

        now = _now()
        if self.faults.template_pause_at:
            for name, at in list(self.faults.template_pause_at.items()):
                if now >= at:
                    for (tname, _), tpl in self.templates.items():
                        if tname == name:
                            lifecycle.set_template_status(self, tpl, "PAUSED", at=at)
                    del self.faults.template_pause_at[name]
        if self.faults.quality_red_at:
            for pnid, at in list(self.faults.quality_red_at.items()):
                if now >= at and pnid in self.numbers:
                    lifecycle.set_number_quality(self, self.numbers[pnid], "RED", at=at)
                    del self.faults.quality_red_at[pnid]

    # -- research mode -------------------------------------------------------------------------
    def research_outcome(self, to: str) -> str | None:
        prefix = self.settings.research_prefix
        if prefix and to.startswith(prefix) and len(to) > len(prefix):
            return RESEARCH_OUTCOMES.get(to[-1])
        return None

    # -- sending -------------------------------------------------------------------------------
    def _bucket(self, pnid: str, number: Number) -> TokenBucket:
        rate = THROUGHPUT_MPS.get(number.throughput_level, 80)
        bucket = self.buckets.get(pnid)
        if bucket is None or bucket.rate != rate:
            bucket = TokenBucket(rate, max(1.0, rate * self.settings.burst_seconds))
            self.buckets[pnid] = bucket
        return bucket

    def latency_s(self) -> float:
        f = self.faults
        if f.latency_ms_median <= 0:
            return 0.0
        p99 = max(f.latency_ms_p99, f.latency_ms_median)
        sigma = math.log(p99 / f.latency_ms_median) / 2.326 if p99 > f.latency_ms_median else 0.0
        return self.rng.lognormvariate(math.log(f.latency_ms_median), sigma) / 1000.0

    def transport_fault(self) -> str | None:
        """'reset', 'timeout' or None for this request (decided before the message is processed)."""
        f = self.faults
        r = self.rng.random()
        if r < f.reset_rate:
            return "reset"
        if r < f.reset_rate + f.timeout_rate:
            return "timeout"
        return None

    def send(self, pnid: str, body: Any) -> dict:
        """Validate and accept one message; returns the success body or raises GraphError."""
        self.counters["requests"] += 1
        self.apply_scheduled_faults()
        number = self.numbers.get(pnid)
        if number is None:
            raise unknown_object(pnid, "post")
        if not isinstance(body, dict):
            raise GraphError(100, "Request body must be a JSON object")
        if body.get("messaging_product") != "whatsapp":
            raise GraphError(100, "The parameter messaging_product is required and must be 'whatsapp'")
        to = body.get("to")
        if not isinstance(to, str) or not to.strip():
            raise GraphError(100, "The parameter to is required")
        to = to if to.startswith("+") else "+" + to
        if not to[1:].isdigit() or not 8 <= len(to) - 1 <= 15:
            raise GraphError(100, f"Invalid parameter 'to': {to!r} is not a phone number in E.164 form")
        if body.get("type", "text") != "template":
            raise GraphError(131051, "Only template messages are supported by this sandbox")
        tpl_req = body.get("template")
        if not isinstance(tpl_req, dict) or not isinstance(tpl_req.get("name"), str) or not tpl_req["name"]:
            raise GraphError(100, "The parameter template['name'] is required")
        lang = (tpl_req.get("language") or {}).get("code") if isinstance(tpl_req.get("language"), dict) else None
        if not isinstance(lang, str) or not lang:
            raise GraphError(100, "The parameter template['language']['code'] is required")
        components = tpl_req.get("components") or []
        if not isinstance(components, list):
            raise GraphError(100, "The parameter template['components'] must be an array")
        if number.status != "CONNECTED":
            raise GraphError(133010, f"Phone number {number.display_phone_number} is {number.status}")
        if number.policy_blocked:
            raise GraphError(368, "The sending number is temporarily blocked for policy violations")
        template = self.templates.get((tpl_req["name"], lang))
        if template is None:
            raise GraphError(132001, f"template name ({tpl_req['name']}) does not exist in {lang}")
        if template.status == "PAUSED":
            raise GraphError(132015, f"Template {template.name} is paused due to low quality")
        if template.status == "DISABLED":
            raise GraphError(132016, f"Template {template.name} is disabled due to low quality")
        if template.status != "APPROVED":
            raise GraphError(132001, f"Template {template.name} is {template.status}, not approved")
        body_params: list[str] = []
        header_image = None
        for comp in components:
            if not isinstance(comp, dict):
                raise GraphError(100, "Each template component must be an object")
            params = comp.get("parameters") or []
            if not isinstance(params, list):
                raise GraphError(100, "Component parameters must be an array")
            ctype = str(comp.get("type", "")).lower()  # Meta accepts "BODY" and "body" alike
            if ctype == "body":
                body_params = [str(p.get("text", "")) for p in params if isinstance(p, dict)]
            elif ctype == "header":
                for p in params:
                    img = p.get("image") if isinstance(p, dict) else None
                    if isinstance(img, dict):
                        if img.get("link"):
                            header_image = img["link"]
                        elif img.get("id") is not None:
                            media_id = str(img["id"])
                            if media_id not in self.media:
                                raise GraphError(131009, f"Param image['id'] ({media_id}) is not a valid media id "
                                                         "uploaded to this phone number")
                            header_image = media_id
        if len(body_params) != template.body_params:
            # details as Meta words them for 132000 (e.g. "body: number of localizable_params (0) does not match the
            # expected number of params (1)")
            raise GraphError(132000, f"body: number of localizable_params ({len(body_params)}) does not match the "
                                     f"expected number of params ({template.body_params})")
        if template.header == "IMAGE" and not header_image:
            raise GraphError(132000, "Template header requires an image parameter (link or id)")
        if self.settings.limits_enabled:
            storm = self.faults.storm_rate > 0 and _now() < self.faults.storm_until
            if storm and self.rng.random() < self.faults.storm_rate:
                self.counters["throttled"] += 1
                raise GraphError(130429, "Cloud API message throughput has been reached.")
            if not self._bucket(pnid, number).try_take():
                self.counters["throttled"] += 1
                # details verbatim from Meta's error-code table (throttling errors)
                raise GraphError(130429, "Cloud API message throughput has been reached.")
            pair_key = (pnid, to)
            pair = self.pair_buckets.get(pair_key)
            if pair is None:
                pair = TokenBucket(1.0 / self.settings.pair_interval_s, self.settings.pair_burst)
                self.pair_buckets[pair_key] = pair
            if not pair.try_take():
                self.counters["pair_limited"] += 1
                raise GraphError(131056, "Too many messages sent from the sender phone number to the same recipient "
                                         "phone number in a short period of time.")
        if self.faults.error_5xx_rate > 0 and self.rng.random() < self.faults.error_5xx_rate:
            self.counters["injected_5xx"] += 1
            raise GraphError(self.rng.choice((131000, 131016)), "Injected transient server error")
        outcome = self.research_outcome(to)
        if outcome == "opted_out":
            raise GraphError(131050, "Research mode: the user has stopped marketing messages")
        if outcome == "undeliverable":
            raise GraphError(131026, "Research mode: message undeliverable")
        if outcome == "temporary_fail":
            self.attempts_by_recipient[to] += 1
            if self.attempts_by_recipient[to] <= 2:
                raise GraphError(131016, "Research mode: temporary failure")
        limit = TIER_LIMITS.get(self.settings.messaging_tier)
        if self.settings.limits_enabled and limit is not None and to not in self.portfolio \
                and self.portfolio.count() >= limit:
            raise GraphError(self.settings.tier_exceeded_code,
                             f"Messaging limit {self.settings.messaging_tier} reached for this business portfolio")
        self.portfolio.add(to)
        wamid = "wamid." + hashlib.sha1(
            f"{pnid}:{to}:{next(self._wamid_seq)}:{os.getpid()}:{self._resets}".encode()).hexdigest()
        entry = LedgerEntry(wamid, to, pnid, template.name, lang, body_params, header_image,
                            body.get("biz_opaque_callback_data"), _now())
        pacing = self.faults.pacing_rate
        if pacing > 0 and (not self.faults.pacing_templates or template.name in self.faults.pacing_templates) \
                and self.rng.random() < pacing:
            entry.message_status = "held_for_quality_assessment"
            self.counters["held_for_quality_assessment"] += 1
        self.ledger.append(entry)
        self.by_wamid[wamid] = entry
        self.counters["accepted"] += 1
        # "Cloud API will always include a message_status property" on template sends: "accepted", or
        # "held_for_quality_assessment" under pacing
        # (https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-pacing;
        # response syntax: https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages)
        return {"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": to.lstrip("+")}],
                "messages": [{"id": wamid, "message_status": entry.message_status}]}

    # -- media ----------------------------------------------------------------------------------
    def upload_media(self, pnid: str, messaging_product: str | None, mime_type: str | None,
                     data: bytes | None) -> MediaItem:
        """POST /{phone-number-id}/media: validate like Meta and store; the caller answers {"id": ...}."""
        if pnid not in self.numbers:
            raise unknown_object(pnid, "post")
        if messaging_product != "whatsapp":
            raise GraphError(131008, "The parameter messaging_product is required and must be 'whatsapp'")
        if data is None:
            raise GraphError(131008, "The parameter file is required")
        if not mime_type:
            raise GraphError(131008, "The parameter type is required")
        mime = mime_type.split(";")[0].strip().lower()
        limit = MEDIA_MAX_BYTES.get(mime)
        if limit is None:
            raise GraphError(131053, f"Param file must be a file with one of the following types: "
                                     f"{', '.join(sorted(MEDIA_MAX_BYTES))}. Received file of type '{mime}'.")
        if len(data) > limit:
            raise GraphError(131053, f"File size too big. Max file size we currently support for {mime}: "
                                     f"{limit // _MB if limit >= _MB else limit // 1024}"
                                     f"{'MB' if limit >= _MB else 'KB'}.")
        magic = _MEDIA_MAGIC.get(mime)
        if not data or (magic and not data.startswith(magic)):
            raise GraphError(131053, f"The uploaded file's content does not match its MIME type {mime}.")
        media_id = str(10**15 + secrets.randbelow(9 * 10**15))
        item = MediaItem(media_id, pnid, mime, data, hashlib.sha256(data).hexdigest(), _now())
        self.media[media_id] = item
        return item

    def media_item(self, media_id: str, pnid: str | None = None, method: str = "get") -> MediaItem:
        """A stored media; `phone_number_id`, when given, must be the number it was uploaded on (Meta: "the request
        will only be processed if the business phone number ID ... matches")."""
        item = self.media.get(media_id)
        if item is None or (pnid and pnid != item.phone_number_id):
            raise unknown_object(media_id, method)
        return item

    # -- delivery outcomes for webhooks ------------------------------------------------------------
    def planned_statuses(self, entry: LedgerEntry) -> list[tuple[str, float, dict | None]]:
        """(status, delay_s, error) events Meta would send for an accepted message."""
        w = self.webhooks
        outcome = self.research_outcome(entry.to)
        if outcome == "permanent_fail":
            return [("failed", w.sent_delay_s, {"code": 131026, "title": ERROR_TITLES[131026]})]
        if outcome == "opted_out_late":
            return [("failed", w.sent_delay_s, {"code": 131050, "title": ERROR_TITLES[131050]})]
        if outcome == "read_at_once":
            return [("sent", w.sent_delay_s, None), ("read", w.delivered_delay_s, None)]
        if outcome == "delivered_late":
            return [("sent", w.sent_delay_s, None), ("delivered", w.late_delivery_s, None)]
        events: list[tuple[str, float, dict | None]] = [("sent", w.sent_delay_s, None),
                                                         ("delivered", w.delivered_delay_s, None)]
        if outcome is None:
            # Deterministic per message so replays and tests agree.
            h = int(hashlib.sha1(entry.wamid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            if h < w.read_rate:
                events.append(("read", w.read_delay_s, None))
        return events

    def status_payload(self, entry: LedgerEntry, statuses: list[tuple[str, float, dict | None]]) -> dict:
        """A status messages webhook: contacts, statuses with recipient_user_id, pricing, conversation (old
        webhook versions) and errors[], as in Meta's reference (devtools/sandbox/lifecycle.py status_value)."""
        from devtools.sandbox import lifecycle

        return self._envelope(lifecycle.status_value(self, entry, statuses), self.numbers.get(entry.phone_number_id))

    def inbound_payload(self, from_phone: str, text: str, pnid: str, name: str = "Advisor", kind: str = "text",
                        **reply: Any) -> dict:
        """An incoming messages webhook: a text, a template quick-reply `button` or an `interactive` reply
        (`reply`: payload, reply_id, interactive_type, description); see lifecycle.inbound_value."""
        from devtools.sandbox import lifecycle

        value, msg_id = lifecycle.inbound_value(self, from_phone.lstrip("+"), pnid, kind, text, name=name, **reply)
        self.inbound.append({"from": from_phone, "text": text, "type": kind, "id": msg_id, "phone_number_id": pnid})
        return self._envelope(value, self.numbers.get(pnid))

    def user_preferences_payload(self, phone: str, preference: str, pnid: str, name: str = "Advisor") -> dict:
        """A user stopped or resumed marketing messages in WhatsApp's "Offers and announcements" setting: Meta's
        `user_preferences` webhook field, shaped as in
        https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/user_preferences
        """
        from devtools.sandbox import lifecycle

        number = self.numbers.get(pnid)
        wa_id = phone.lstrip("+")
        detail = f"User requested to {preference} marketing messages"
        self.preferences.append({"wa_id": wa_id, "value": preference, "phone_number_id": pnid})
        # user_id (the business-scoped user ID) in contacts and in the preference: lifecycle.BSUID_PAGE.
        user_id = lifecycle.bsuid(wa_id, self.settings.waba_id)
        return self._envelope({"contacts": [lifecycle.contact(self, wa_id, name)],
                               "user_preferences": [{"wa_id": wa_id, "user_id": user_id,
                                                     "detail": detail, "category": "marketing_messages",
                                                     "value": preference, "timestamp": int(_now())}]},
                              number, field="user_preferences")

    def _envelope(self, value: dict, number: Number | None, field: str = "messages") -> dict:
        meta = {"display_phone_number": (number.display_phone_number.lstrip("+") if number else ""),
                "phone_number_id": number.phone_number_id if number else ""}
        return {"object": "whatsapp_business_account", "entry": [{
            "id": self.settings.waba_id,
            "changes": [{"value": {"messaging_product": "whatsapp", "metadata": meta, **value}, "field": field}]}]}

    # -- ledger queries ----------------------------------------------------------------------------
    def ledger_stats(self) -> dict:
        per_day: Counter[tuple[str, str]] = Counter()
        per_key: Counter[str] = Counter()
        for e in self.ledger:
            per_day[(e.to, time.strftime("%Y-%m-%d", time.gmtime(e.accepted_at + 19_800)))] += 1  # IST day
            if e.biz_opaque_callback_data:
                per_key[e.biz_opaque_callback_data] += 1
        dup_recipient_days = {f"{to}@{day}": n for (to, day), n in per_day.items() if n > 1}
        dup_keys = {k: n for k, n in per_key.items() if n > 1}
        by_number: defaultdict[str, int] = defaultdict(int)
        for e in self.ledger:
            by_number[e.phone_number_id] += 1
        return {"accepted": len(self.ledger), "unique_recipients": len({e.to for e in self.ledger}),
                "duplicate_recipient_days": dup_recipient_days, "duplicate_idempotency_keys": dup_keys,
                "by_number": dict(by_number), "counters": dict(self.counters)}

    def ledger_entries(self, to: str | None = None, key: str | None = None, limit: int = 1000,
                       offset: int = 0) -> list[dict]:
        rows = self.ledger
        if to:
            rows = [e for e in rows if e.to == to]
        if key:
            rows = [e for e in rows if e.biz_opaque_callback_data == key]
        now = _now()
        out = []
        for e in rows[offset:offset + limit]:
            item = asdict(e)
            # Status evidence: the statuses Meta would have reported by now (what a status lookup shows).
            item["statuses"] = [{"status": s, **({"error": err} if err else {})}
                                for s, delay, err in self.planned_statuses(e) if e.accepted_at + delay <= now]
            out.append(item)
        return out
