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

from include.ratelimit import RollingUniqueCounter, TokenBucket
from include.platform_limits import THROUGHPUT_MPS, TIER_LIMITS


# Default HTTP status per Graph error code (configurable at run time: sources disagree).
DEFAULT_HTTP_STATUS = {
    4: 429, 80007: 429, 130429: 429, 131056: 429, 190: 401, 368: 403, 100: 400, 131000: 500, 131016: 503,
    131026: 400, 131047: 400, 131048: 400, 131049: 400, 131050: 400, 131051: 400, 132000: 400, 132001: 404,
    132015: 400, 132016: 400, 133010: 400,
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
    def __init__(self, code: int, details: str = "", message: str | None = None):
        self.code = code
        self.details = details
        self.message = message or f"({'#'}{code}) {ERROR_TITLES.get(code, 'Error')}"
        super().__init__(self.message)


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
        return {"id": self.phone_number_id, "display_phone_number": self.display_phone_number,
                "verified_name": self.verified_name, "quality_rating": self.quality_rating,
                "status": self.status, "throughput": {"level": self.throughput_level},
                "messaging_limit_tier": tier, "name_status": "APPROVED"}


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

    def public(self) -> dict:
        comps = [{"type": "HEADER", "format": self.header},
                 {"type": "BODY", "text": " ".join(f"{{{{{i}}}}}" for i in range(1, self.body_params + 1))}]
        return {"id": self.id, "name": self.name, "language": self.language, "status": self.status,
                "category": self.category, "quality_score": {"score": self.quality_score}, "components": comps}


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


@dataclass
class WebhookSettings:
    url: str = ""
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    batch_max: int = 1
    sent_delay_s: float = 0.05
    delivered_delay_s: float = 0.3
    read_delay_s: float = 1.0
    read_rate: float = 0.7
    late_delivery_s: float = 600.0
    max_attempts: int = 8
    retry_base_s: float = 0.5


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


def _now() -> float:
    return time.time()


class Sandbox:
    """All mutable sandbox state. Single event loop, so no locking is needed."""

    def __init__(self, settings: Settings | None = None, webhooks: WebhookSettings | None = None):
        self.settings = settings or Settings()
        self.webhooks = webhooks or WebhookSettings()
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

    def seed_defaults(self) -> None:
        """The demo world's five numbers and four approved templates (mirrors include/demo_world.py)."""
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
        if not token or not secrets.compare_digest(token, self.settings.access_token):
            raise GraphError(190, "Invalid OAuth access token - Cannot parse access token",
                             "Invalid OAuth access token - Cannot parse access token")
        if self.faults.token_expires_at is not None and _now() >= self.faults.token_expires_at:
            raise GraphError(190, "Error validating access token: Session has expired",
                             "Error validating access token: Session has expired")

    def apply_scheduled_faults(self) -> None:
        now = _now()
        if self.faults.template_pause_at:
            for name, at in list(self.faults.template_pause_at.items()):
                if now >= at:
                    for (tname, _), tpl in self.templates.items():
                        if tname == name:
                            tpl.status = "PAUSED"
                    del self.faults.template_pause_at[name]
        if self.faults.quality_red_at:
            for pnid, at in list(self.faults.quality_red_at.items()):
                if now >= at and pnid in self.numbers:
                    self.numbers[pnid].quality_rating = "RED"
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
            raise GraphError(100, f"Unsupported post request. Object with ID '{pnid}' does not exist, cannot be "
                                  "loaded due to missing permissions, or does not support this operation",
                             f"Unsupported post request. Object with ID '{pnid}' does not exist")
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
            if comp.get("type") == "body":
                body_params = [str(p.get("text", "")) for p in params if isinstance(p, dict)]
            elif comp.get("type") == "header":
                for p in params:
                    img = p.get("image") if isinstance(p, dict) else None
                    if isinstance(img, dict):
                        header_image = img.get("link") or img.get("id")
        if len(body_params) != template.body_params:
            raise GraphError(132000, f"Number of parameters ({len(body_params)}) does not match the expected "
                                     f"number of params ({template.body_params})")
        if template.header == "IMAGE" and not header_image:
            raise GraphError(132000, "Template header requires an image parameter (link or id)")
        if self.settings.limits_enabled:
            storm = self.faults.storm_rate > 0 and _now() < self.faults.storm_until
            if storm and self.rng.random() < self.faults.storm_rate:
                self.counters["throttled"] += 1
                raise GraphError(130429, "Cloud API message throughput has been reached (storm)")
            if not self._bucket(pnid, number).try_take():
                self.counters["throttled"] += 1
                raise GraphError(130429, f"Message throughput of {THROUGHPUT_MPS.get(number.throughput_level)} "
                                         "messages/s reached for this phone number")
            pair_key = (pnid, to)
            pair = self.pair_buckets.get(pair_key)
            if pair is None:
                pair = TokenBucket(1.0 / self.settings.pair_interval_s, self.settings.pair_burst)
                self.pair_buckets[pair_key] = pair
            if not pair.try_take():
                self.counters["pair_limited"] += 1
                raise GraphError(131056, "Too many messages sent from this phone number to the same recipient "
                                         "in a short period of time")
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
        wamid = "wamid." + hashlib.sha1(f"{pnid}:{to}:{next(self._wamid_seq)}:{os.getpid()}".encode()).hexdigest()
        entry = LedgerEntry(wamid, to, pnid, template.name, lang, body_params, header_image,
                            body.get("biz_opaque_callback_data"), _now())
        self.ledger.append(entry)
        self.by_wamid[wamid] = entry
        self.counters["accepted"] += 1
        return {"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": to.lstrip("+")}],
                "messages": [{"id": wamid}]}

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
        number = self.numbers.get(entry.phone_number_id)
        out = []
        for status, ts, error in statuses:
            item: dict[str, Any] = {"id": entry.wamid, "status": status, "timestamp": str(int(ts)),
                                    "recipient_id": entry.to.lstrip("+")}
            if entry.biz_opaque_callback_data:
                item["biz_opaque_callback_data"] = entry.biz_opaque_callback_data
            if status != "failed":
                item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "marketing"}
            if error:
                item["errors"] = [{"code": error["code"], "title": error["title"], "message": error["title"],
                                   "error_data": {"details": error["title"]}}]
            out.append(item)
        return self._envelope({"statuses": out}, number)

    def inbound_payload(self, from_phone: str, text: str, pnid: str, name: str = "Advisor") -> dict:
        number = self.numbers.get(pnid)
        msg_id = "wamid." + secrets.token_hex(16)
        wa_id = from_phone.lstrip("+")
        msg = {"from": wa_id, "id": msg_id, "timestamp": str(int(_now())), "type": "text", "text": {"body": text}}
        self.inbound.append({"from": from_phone, "text": text, "id": msg_id, "phone_number_id": pnid})
        return self._envelope({"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [msg]}, number)

    def user_preferences_payload(self, phone: str, preference: str, pnid: str, name: str = "Advisor") -> dict:
        """A user stopped or resumed marketing messages in WhatsApp's "Offers and announcements" setting: Meta's
        `user_preferences` webhook field, shaped as in
        https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/user_preferences
        """
        number = self.numbers.get(pnid)
        wa_id = phone.lstrip("+")
        detail = f"User requested to {preference} marketing messages"
        self.preferences.append({"wa_id": wa_id, "value": preference, "phone_number_id": pnid})
        return self._envelope({"contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
                               "user_preferences": [{"wa_id": wa_id, "detail": detail, "category": "marketing_messages",
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
