"""The WhatsApp webhook receiver: the endpoint Meta calls with message statuses and inbound messages.

Where it runs: in production its own process behind the public URL (`standalone_app`, under uvicorn; README
"Where the receiver runs"), because inside the api-server Airflow's middlewares cost about ten times the ingest
itself (bench/webhook_receiver.py measures both). `make run` and the tests also serve it from the api-server as a
plugin FastAPI app (plugins/whatsapp_webhook.py) at `/whatsapp/webhook`; `create_app` takes its engine and
secrets explicitly, so it runs alone under uvicorn too (tests, benchmark).

Per event it does little before the 200 (issue 19: >= 6,000 events/s on 2 cores): POST /webhook is answered
straight from ASGI (`ReceiverApp.__call__`, not FastAPI's router and middlewares), the signature is one C HMAC,
the body is decoded by msgspec, and requests arriving together are stored by one set-based INSERT (the batch as
one jsonb array, webhooks/insert_events) on an asyncio psycopg connection kept by each writer.

* GET answers Meta's verification handshake (hub.mode / hub.verify_token / hub.challenge).
* POST verifies `X-Hub-Signature-256` over the raw body with the app secret: 401 when missing, 403
  when wrong; nothing is stored for a rejected request. The body is streamed and capped at
  `config.WEBHOOK_MAX_BODY_BYTES` (413 beyond, or at once for a larger Content-Length), so nobody can
  make the api-server buffer an unbounded body before the signature is checked. A signed body that is
  not a WhatsApp webhook (not a JSON object, or malformed inside) is a 400; the log then carries the
  reason, size and sha256 of the body, never the body (it holds phone numbers and message texts).
* Both Meta-facing routes are unauthenticated: Meta cannot log in, the signature (POST) and the verify
  token (GET) are its credentials. Operational routes (`/webhook/stats`) take the `ops_auth`
  dependency; the api-server plugin passes Airflow's, so they need a logged-in Airflow user.
* Every event is stored in `webhook_events`, deduplicated on wamid + status + timestamp (statuses),
  message id (inbound), wa_id + preference + timestamp (user_preferences) or, for lifecycle webhooks (which
  carry no event id), what changed + entry.time, and committed before the 200: a 200 means durable.
  Requests arriving together share one transaction (group commit, at most WEBHOOK_MAX_BATCH_EVENTS events;
  WEBHOOK_WRITERS transactions at once), which is what keeps thousands of events a second cheap.
* Opt-outs put the number on `do_not_contact` in the same transaction as their event, with the event as
  `source_event_id`: an inbound opt-out reply (STOP and the configured keywords, English and Hindi;
  source 'inbound_opt_out'), a `failed` status with error 131050 "user has stopped marketing messages"
  and a `user_preferences` webhook with marketing_messages = stop (both 'api_opt_out'). The planner
  (eligible_advisors) and the sender's claim both read `do_not_contact`, so no later plan or send
  reaches the number. A user_preferences 'resume' is stored as an event only.
* Lifecycle webhooks are stored and applied in the same transaction, so the fan-out sees them without
  polling Graph: `message_template_status_update` sets whatsapp_templates.status (Meta's event mapped by
  TEMPLATE_STATUS_BY_EVENT) with the reason, `message_template_quality_update` its quality,
  `phone_number_quality_update` the sending number's quality_rating / messaging_tier / throughput (see
  apply_phone_quality.sql for the mapping); `account_alerts` and account-level `value.errors[]` are stored
  for the operators. An event older than the state already applied (entry.time) changes nothing.
* Turning statuses into `deliveries` is separate (include/reporting/webhook_reconciliation.py, post_delivery_report).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.engine import Connection, Engine

from include.core import config
from include.core.db import query
from include.whatsapp.platform_limits import THROUGHPUT_MPS, TIER_LIMITS
from include.whatsapp.client import OPT_OUT_CODES

log = logging.getLogger(__name__)

# do_not_contact.source values (see the table's CHECK constraint).
INBOUND_OPT_OUT = "inbound_opt_out"
API_OPT_OUT = "api_opt_out"


@dataclass(frozen=True)
class ReceiverSecrets:
    """The webhook's credentials. During an app-secret rotation the previous secret is still accepted until
    `previous_until`: Meta signs with the new one as soon as it is saved in the App Dashboard, while requests
    already in flight (and Meta's retries of them) were signed with the old one."""

    app_secret: str
    verify_token: str
    previous_app_secret: str | None = None
    previous_until: dt.datetime | None = None

    def secrets_at(self, now: dt.datetime) -> tuple[str, ...]:
        """The secrets a signature may be made with at `now`: the current one first."""
        if self.previous_app_secret and self.previous_until and now < self.previous_until:
            return (self.app_secret, self.previous_app_secret)
        return (self.app_secret,)


def signature_ok(raw: bytes, header: str | None, app_secret: str) -> bool:
    """`header` is `sha256=<hex HMAC-SHA256 of raw with app_secret>` (hex in either case). One-shot C digest
    and a constant-time compare of the 32 bytes."""
    if not header or not header.startswith("sha256="):
        return False
    try:
        given = bytes.fromhex(header[7:].strip())
    except ValueError:
        return False
    return hmac.compare_digest(given, hmac.digest(app_secret.encode(), raw, "sha256"))


def signed_with(raw: bytes, header: str | None, secrets: ReceiverSecrets, now: dt.datetime | None = None) -> str | None:
    """Which secret signed `raw` ("current" or "previous"), or None when neither did."""
    for name, secret in zip(("current", "previous"), secrets.secrets_at(now or dt.datetime.now(dt.UTC)), strict=False):
        if signature_ok(raw, header, secret):
            return name
    return None


# -- opt-out replies --------------------------------------------------------------------------------------
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "_": " "})
# Hindi is verb-final: "मैसेज बंद करो" (stop the messages) ends with the keyword and an imperative.
_HI_IMPERATIVES = ("करो", "करें", "करे", "करिए", "करिये", "कीजिए", "कीजिये", "कर", "दो", "दें", "दीजिए",
                   "रोकें", "रोको", "रोकिए", "रुको", "रुकें")
_MAX_REPLY_WORDS = 4  # after a polite prefix: "stop sending these", not "stop by the office tomorrow ..."


def _edge_trim(word: str) -> str:
    """A word without leading or trailing punctuation and symbols (".", "!", "।", quotes, emoji)."""
    i, j = 0, len(word)
    while i < j and unicodedata.category(word[i])[0] in "PS":
        i += 1
    while j > i and unicodedata.category(word[j - 1])[0] in "PS":
        j -= 1
    return word[i:j]


def reply_words(text: str) -> tuple[str, ...]:
    """The words of a reply, normalised for matching: NFKC, case-folded, curly apostrophes made straight,
    hyphens and dashes of every kind ("opt-out", "opt–out") and underscores made spaces, punctuation and
    symbols trimmed from each word's edges ("stop!", "बंद।")."""
    s = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    s = "".join(" " if unicodedata.category(ch) == "Pd" else ch for ch in s)
    return tuple(w for w in (_edge_trim(w) for w in s.split()) if w)


@functools.lru_cache(maxsize=8)
def _phrases(values: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(configured value, its words), longest first, so "stop all" wins over "stop"."""
    out = [(v, reply_words(v)) for v in values]
    return tuple(sorted(((v, w) for v, w in out if w), key=lambda p: len(p[1]), reverse=True))


def _contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(words[i:i + n] == phrase for i in range(len(words) - n + 1))


def _devanagari(s: str) -> bool:
    return any("\u0900" <= ch <= "\u097f" for ch in s)


def opt_out_keyword(text: str | None, keywords: tuple[str, ...] | None = None,
                    polite: tuple[str, ...] | None = None,
                    negations: tuple[str, ...] | None = None) -> str | None:
    """The keyword an inbound text opts out with, if any.

    * the whole message is a keyword, whatever its case, punctuation or hyphenation ("STOP!", "Opt-Out");
    * or, after at most two polite words ("please", "kindly", "कृपया"), it starts with a keyword and is at
      most four words ("STOP please", "please stop sending these", "बंद करो");
    * or, for Hindi keywords (verb-final), it ends with the keyword and an imperative ("मैसेज बंद करो");
    * never when it carries a negation: "Don't stop the updates", "please do not stop", "बंद मत करो".
    """
    keywords = config.OPT_OUT_KEYWORDS if keywords is None else keywords
    polite = config.OPT_OUT_POLITE_WORDS if polite is None else polite
    negations = config.OPT_OUT_NEGATIONS if negations is None else negations
    if not text or not isinstance(text, str):
        return None
    words = reply_words(text)
    if not words:
        return None
    kws = _phrases(tuple(keywords))
    for k, kw in kws:
        if words == kw:
            return k
    if any(w.endswith("n't") for w in words) or any(_contains(words, n) for _, n in _phrases(tuple(negations))):
        return None
    polite_words = {w for _, p in _phrases(tuple(polite)) for w in p}
    start = 0
    while start < min(2, len(words)) and words[start] in polite_words:
        start += 1
    rest = words[start:]
    if not rest or len(rest) > _MAX_REPLY_WORDS:
        return None
    for k, kw in kws:
        if rest[:len(kw)] == kw:
            return k
    tail = rest
    while tail and tail[-1] in polite_words:
        tail = tail[:-1]
    if tail and tail[-1] in _hi_imperatives():
        for k, kw in kws:
            n = len(kw)
            if _devanagari(k) and (tail[-n:] == kw or tail[-n - 1:-1] == kw):
                return k
    return None


@functools.cache
def _hi_imperatives() -> frozenset[str]:
    return frozenset(w for v in _HI_IMPERATIVES for w in reply_words(v))


# -- parsing ----------------------------------------------------------------------------------------------
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
    opt_out: str | None = None                # the keyword of an inbound opt-out reply
    dnc: tuple[str, str] | None = None        # (do_not_contact source, reason) this event puts the number on
    lifecycle: dict | None = None             # state a lifecycle webhook applies (see _apply_lifecycle)


def _ts(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


_E164_DIGITS = re.compile(r"[1-9][0-9]{7,14}")


def _phone(wa_id: Any) -> str | None:
    """A wa_id (recipient_id, from) as E.164, or None when it is not a phone number. Meta notes a wa_id may
    differ from the phone number; ours are the numbers we message, so it is the key do_not_contact needs."""
    if not isinstance(wa_id, str):
        return None
    digits = wa_id.lstrip("+")
    return f"+{digits}" if digits.isascii() and _E164_DIGITS.fullmatch(digits) else None


def _obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _items(container: dict, key: str, where: str) -> list[dict]:
    """container[key] as a list of objects (absent or null: empty). Anything else is not a WhatsApp webhook;
    the message names the place, never the content (it may hold phone numbers)."""
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{where}.{key} is not a list of objects")
    return value


def _opt_str(item: dict, key: str, where: str) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}.{key} is not a string")
    return value


def _inbound_texts(msg: dict) -> tuple:
    """What an inbound message says, for opt-out matching: a text's body; a quick-reply `button`'s text and
    payload (a template's "Stop promotions" button); an `interactive` button_reply's or list_reply's title and
    id. Each is matched on its own, so an opaque payload next to a "Stop promotions" label still opts out."""
    kind = msg.get("type")
    if kind == "text":
        return (_obj(msg.get("text")).get("body"),)
    if kind == "button":
        button = _obj(msg.get("button"))
        return button.get("text"), button.get("payload")
    if kind == "interactive":
        inter = _obj(msg.get("interactive"))
        reply = _obj(inter.get(inter.get("type"))) if isinstance(inter.get("type"), str) else {}
        reply = reply or _obj(inter.get("button_reply")) or _obj(inter.get("list_reply"))
        return reply.get("title"), reply.get("id")
    return ()


def _reply_opt_out(msg: dict) -> str | None:
    for text in _inbound_texts(msg):
        keyword = opt_out_keyword(text)
        if keyword:
            return keyword
    return None


def _error_codes(item: dict) -> set[int]:
    codes = set()
    errors = item.get("errors")
    for err in errors if isinstance(errors, list) else []:
        try:
            codes.add(int(_obj(err).get("code")))
        except (TypeError, ValueError):
            continue
    return codes


_STOP_REASON = "WhatsApp user_preferences: user requested to stop marketing messages"


# -- lifecycle webhooks -----------------------------------------------------------------------------------
# message_template_status_update `event` -> whatsapp_templates.status. Meta's events, per
# https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/message_template_status_update
# REINSTATED ("no longer flagged or disabled and can be sent again") is APPROVED. Events that are not a status
# of their own are stored and change nothing: FLAGGED (negative feedback, at risk of being disabled: still
# sendable), LOCKED / UNLOCKED (editing), UNARCHIVED ("restored to its previous status", which the webhook does
# not name: the next Graph sync reads it).
TEMPLATE_STATUS_BY_EVENT = {
    "APPROVED": "APPROVED", "REINSTATED": "APPROVED", "PENDING": "PENDING", "REJECTED": "REJECTED",
    "PAUSED": "PAUSED", "DISABLED": "DISABLED", "IN_APPEAL": "IN_APPEAL", "PENDING_DELETION": "PENDING_DELETION",
    "DELETED": "DELETED", "LIMIT_EXCEEDED": "LIMIT_EXCEEDED", "ARCHIVED": "ARCHIVED",
}
TEMPLATE_QUALITY = {"GREEN": "GREEN", "YELLOW": "YELLOW", "RED": "RED", "UNKNOWN": "UNKNOWN",
                    "HIGH": "GREEN", "MEDIUM": "YELLOW", "LOW": "RED"}
# business_capability_update documents the portfolio limit as a number (-1 = unlimited).
_TIER_BY_NUMBER = {250: "TIER_250", 2000: "TIER_2K", 10_000: "TIER_10K", 100_000: "TIER_100K", -1: "TIER_UNLIMITED"}


def _tier(value: Any) -> str | None:
    """A messaging tier we model (include/platform_limits.TIER_LIMITS), else None: TIER_NOT_SET or the old
    TIER_1K leave the stored tier alone rather than putting a tier the planner cannot size on the number."""
    if isinstance(value, str) and value in TIER_LIMITS:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return _TIER_BY_NUMBER.get(value)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return _TIER_BY_NUMBER.get(int(value))
    return None


def _lifecycle_key(prefix: str, entry: dict, value: dict, *parts: Any) -> str:
    """Meta gives lifecycle webhooks no event id: the key is what changed and entry.time (when it happened), so
    a replay is one event and a later change of the same kind is another. Without a time, the whole value."""
    at = entry.get("time")
    if at is None:
        digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:32]
        return f"{prefix}:{entry.get('id')}:{digest}"
    return ":".join([prefix, str(entry.get("id")), *(str(p) for p in parts), str(at)])


def _template_ref(value: dict, where: str) -> tuple[str | None, str | None, str | None]:
    name = _opt_str(value, "message_template_name", where)
    language = _opt_str(value, "message_template_language", where)
    tid = value.get("message_template_id")
    tid = str(tid) if isinstance(tid, (int, str)) and not isinstance(tid, bool) and str(tid) else None
    if not name and not tid:
        raise ValueError(f"{where} without message_template_name or message_template_id")
    return name, language, tid


def _status_reason(value: dict) -> str:
    """Meta's event, reason and whatever detail came with it, as one line for whatsapp_templates.status_reason."""
    parts = [f"{value.get('event')}"]
    if value.get("reason") not in (None, ""):
        parts.append(f"reason {value.get('reason')}")
    other, rejection, disable = (_obj(value.get(k)) for k in ("other_info", "rejection_info", "disable_info"))
    if other:
        parts.append(": ".join(str(other[k]) for k in ("title", "description") if other.get(k)))
    if rejection.get("reason"):
        parts.append(str(rejection["reason"]))
    if disable.get("disable_date") is not None:
        parts.append(f"disabled at {disable['disable_date']}")
    return "; ".join(p for p in parts if p)


def _template_status(entry: dict, value: dict) -> ParsedEvent:
    event = _opt_str(value, "event", "message_template_status_update")
    if not event:
        raise ValueError("message_template_status_update without event")
    name, language, tid = _template_ref(value, "message_template_status_update")
    apply = {"kind": "template_status", "name": name, "language": language, "template_id": tid,
             "status": TEMPLATE_STATUS_BY_EVENT.get(event), "reason": _status_reason(value)}
    return ParsedEvent(_lifecycle_key("ts", entry, value, tid or f"{name}/{language}", event), "template_status",
                       value, status=event, event_ts=_ts(entry.get("time")), lifecycle=apply)


def _template_quality(entry: dict, value: dict) -> ParsedEvent:
    new = _opt_str(value, "new_quality_score", "message_template_quality_update")
    if not new:
        raise ValueError("message_template_quality_update without new_quality_score")
    name, language, tid = _template_ref(value, "message_template_quality_update")
    apply = {"kind": "template_quality", "name": name, "language": language, "template_id": tid,
             "quality": TEMPLATE_QUALITY.get(new.upper())}
    return ParsedEvent(_lifecycle_key("tq", entry, value, tid or f"{name}/{language}", new), "template_quality",
                       value, status=new, event_ts=_ts(entry.get("time")), lifecycle=apply)


def _phone_quality(entry: dict, value: dict) -> ParsedEvent:
    """phone_number_quality_update. FLAGGED / UNFLAGGED / UPGRADE / DOWNGRADE come from Meta's older reference
    ("Flagged status occurs when the quality rating reaches a low state",
    https://developers.facebook.com/docs/whatsapp/business-management-api/quality-signals); the current page
    documents ONBOARDING and THROUGHPUT_UPGRADE, and max_daily_conversations_per_business replacing current_limit
    (for a THROUGHPUT_UPGRADE, current_limit TIER_UNLIMITED means the higher throughput, not a messaging tier)."""
    display = _opt_str(value, "display_phone_number", "phone_number_quality_update")
    event = _opt_str(value, "event", "phone_number_quality_update")
    digits = "".join(ch for ch in display or "" if ch.isdigit())
    if not digits or not event:
        raise ValueError("phone_number_quality_update without display_phone_number or event")
    tier = _tier(value.get("max_daily_conversations_per_business"))
    if tier is None and event != "THROUGHPUT_UPGRADE":
        tier = _tier(value.get("current_limit"))
    apply = {"kind": "phone_quality", "digits": digits, "event": event, "tier": tier,
             "throughput_mps": THROUGHPUT_MPS["HIGH"] if event == "THROUGHPUT_UPGRADE" else None}
    limit = value.get("max_daily_conversations_per_business", value.get("current_limit"))
    return ParsedEvent(_lifecycle_key("pq", entry, value, digits, event, limit), "phone_quality", value,
                       status=event, event_ts=_ts(entry.get("time")), lifecycle=apply)


def _account_alert(entry: dict, value: dict) -> ParsedEvent:
    info = _obj(value.get("alert_info"))
    alert_type = info.get("alert_type")
    key = _lifecycle_key("aa", entry, value, value.get("entity_id"), alert_type, info.get("alert_status"))
    return ParsedEvent(key, "account_alert", value, status=str(alert_type) if alert_type else None,
                       event_ts=_ts(entry.get("time")), lifecycle={"kind": "account_alert"})


_LIFECYCLE_FIELDS: dict[str, Callable[[dict, dict], ParsedEvent]] = {
    "message_template_status_update": _template_status,
    "message_template_quality_update": _template_quality,
    "phone_number_quality_update": _phone_quality,
    "account_alerts": _account_alert,
}


def parse_events(payload: Any) -> list[ParsedEvent]:
    """Flatten a webhook body into events. Raises ValueError for a body that is not a WhatsApp webhook:
    not an object, another object type, or a malformed structure inside (entry, changes, value, items)."""
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        raise ValueError("not a whatsapp_business_account webhook")
    events: list[ParsedEvent] = []
    for entry in _items(payload, "entry", "body"):
        for change in _items(entry, "changes", "entry"):
            value = change.get("value")
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ValueError("change value is not an object")
            lifecycle = _LIFECYCLE_FIELDS.get(change.get("field"))
            if lifecycle is not None:
                events.append(lifecycle(entry, value))
                continue
            for s in _items(value, "statuses", "value"):
                wamid, status = _opt_str(s, "id", "status"), _opt_str(s, "status", "status")
                if not wamid or not status:
                    raise ValueError("status event without id or status")
                ts = s.get("timestamp")
                dnc = None
                if status == "failed" and _error_codes(s) & OPT_OUT_CODES:
                    # 131050 after the send: Meta did not deliver because the user stopped marketing messages.
                    dnc = (API_OPT_OUT, "WhatsApp 131050 (failed status): user stopped marketing messages")
                events.append(ParsedEvent(f"s:{wamid}:{status}:{ts}", "status", s, wamid=wamid, status=status,
                                          from_phone=_phone(s.get("recipient_id")), event_ts=_ts(ts),
                                          biz_opaque=_opt_str(s, "biz_opaque_callback_data", "status"), dnc=dnc))
            for m in _items(value, "messages", "value"):
                msg_id = _opt_str(m, "id", "message")
                if not msg_id:
                    raise ValueError("inbound message without id")
                kind = m.get("type") if isinstance(m.get("type"), str) else None
                keyword, dnc = _reply_opt_out(m), None
                if keyword:
                    dnc = (INBOUND_OPT_OUT, f'inbound opt-out reply "{keyword}"')
                system = _obj(m.get("system"))
                if kind == "system" and system.get("type") == "user_preference_changed" \
                        and system.get("marketing") == "stop":
                    # The same preference change as a system message (older API versions send this form).
                    dnc = (API_OPT_OUT, _STOP_REASON)
                events.append(ParsedEvent(f"m:{msg_id}", "message", m, wamid=msg_id, status=kind,
                                          from_phone=_phone(m.get("from")), event_ts=_ts(m.get("timestamp")),
                                          opt_out=keyword, dnc=dnc))
            for p in _items(value, "user_preferences", "value"):
                # field "user_preferences": a user stopped or resumed marketing messages in WhatsApp's settings.
                wa_id, category = _opt_str(p, "wa_id", "user_preference"), _opt_str(p, "category", "user_preference")
                pref = _opt_str(p, "value", "user_preference")
                if not wa_id or not pref:
                    raise ValueError("user_preferences item without wa_id or value")
                ts = p.get("timestamp")
                dnc = None
                if category == "marketing_messages" and pref == "stop":
                    dnc = (API_OPT_OUT, _STOP_REASON)
                # 'resume' is recorded only: taking a number off do_not_contact is a human decision (an operator
                # checks consent and deletes the entry); a webhook never silently re-enables messaging.
                events.append(ParsedEvent(f"p:{wa_id}:{category}:{pref}:{ts}", "user_preference", p,
                                          status=pref, from_phone=_phone(wa_id), event_ts=_ts(ts), dnc=dnc))
            for err in _items(value, "errors", "value"):
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
    lifecycle_applied: int = 0
    rejected_401: int = 0
    rejected_403: int = 0
    signed_with_previous_secret: int = 0
    rejected_413: int = 0
    bad_requests: int = 0
    commits: int = 0
    store_failures: int = 0
    started_at: float = field(default_factory=time.time)


def _apply_lifecycle(conn, events: list[tuple[ParsedEvent, int]]) -> int:
    """Apply newly stored lifecycle events (in arrival order) to whatsapp_templates and sending_numbers, and mark
    them processed, noting why one changed nothing. Returns how many changed a row. Rare (a few a day), so one
    statement per event keeps each aspect's "newer than what is shown" check exact."""
    applied, ids, notes = 0, [], []
    for ev, event_id in events:
        a = ev.lifecycle or {}
        at = ev.event_ts or dt.datetime.now(dt.UTC)
        note: str | None = None
        if a.get("kind") == "template_status":
            if a["status"] is None:
                note = f"{ev.status}: recorded only (not a template status of its own)"
            elif not conn.execute(query("webhooks/apply_template_status"), {
                    "status": a["status"], "reason": a["reason"], "at": at, "event_id": event_id, "name": a["name"],
                    "language": a["language"], "template_id": a["template_id"]}).fetchall():
                note = "no whatsapp_templates row changed: unknown template, or a newer change already applied"
        elif a.get("kind") == "template_quality":
            if a["quality"] is None:
                note = f"quality score {ev.status!r} not understood"
            elif not conn.execute(query("webhooks/apply_template_quality"), {
                    "quality": a["quality"], "at": at, "name": a["name"], "language": a["language"],
                    "template_id": a["template_id"]}).fetchall():
                note = "no whatsapp_templates row changed: unknown template, or a newer change already applied"
        elif a.get("kind") == "phone_quality":
            if not conn.execute(query("webhooks/apply_phone_quality"), {
                    "event": a["event"], "tier": a["tier"], "throughput_mps": a["throughput_mps"], "at": at,
                    "event_id": event_id, "digits": a["digits"]}).fetchall():
                note = "no sending_numbers row changed: unknown number, or a newer change already applied"
        else:
            note = "recorded for the operators"
        applied += note is None
        ids.append(event_id)
        notes.append(note)
    conn.execute(query("webhooks/mark_lifecycle"), {"event_ids": ids, "notes": notes})
    return applied


_encode = msgspec.json.Encoder().encode


def _insert_param(batch: list[tuple[ParsedEvent, str]]) -> tuple[str, dict[int, list[str]]]:
    """The batch as ONE JSON array of rows for webhooks/insert_events (a single C encode instead of a Python
    adapter call per value), and each request's dedupe keys in order (keyed by id() of its body).

    A request's events share its body object (`raw`); the body is sent and stored once per request, on its
    first event, and the others carry 'sha256:<hex>' of it."""
    rows: list[list] = []
    requests: dict[int, list[str]] = {}
    refs: dict[int, str] = {}
    for ev, raw in batch:
        keys = requests.setdefault(id(raw), [])
        if not keys:
            body: str = raw
        else:
            body = refs.get(id(raw)) or refs.setdefault(id(raw), "sha256:" + hashlib.sha256(raw.encode()).hexdigest())
        keys.append(ev.dedupe_key)
        rows.append([ev.dedupe_key, ev.kind, ev.wamid, ev.status, ev.from_phone, ev.event_ts, ev.biz_opaque,
                     ev.payload, body])
    return _encode(rows).decode(), requests


def store(db: Engine | Connection, batch: list[tuple[ParsedEvent, str]]) -> tuple[int, int, int]:
    """Insert events, the opt-outs they carry and the lifecycle state they report in one transaction:
    (stored, opt-outs, lifecycle changes). Only a newly stored event adds an opt-out or applies a lifecycle
    change, so a replay never re-adds a number an operator removed nor moves a template back.

    One set-based INSERT per batch (webhooks/insert_events: the rows as one jsonb array, duplicates skipped by
    ON CONFLICT on the dedupe key, the new ones returned), then the opt-outs and lifecycle changes of the new
    events, all before the commit."""
    if not batch:
        return 0, 0, 0
    if isinstance(db, Engine):
        with db.begin() as conn:
            return _store(conn, batch)
    with db.begin():
        return _store(db, batch)


def _orphans(new: dict[str, int], requests: dict[int, list[str]], bodies: dict[int, str]) -> dict | None:
    """webhooks/attach_body parameters for the requests whose first event was a replay but that brought new
    events: their body goes on their first new event. None when there are none (the usual case)."""
    orphaned = [(next(new[k] for k in keys if k in new), bodies[body_id]) for body_id, keys in requests.items()
                if keys[0] not in new and any(k in new for k in keys)]
    if not orphaned:
        return None
    return {"event_ids": [o[0] for o in orphaned], "raw_bodies": [o[1] for o in orphaned]}


def _opt_outs(batch: list[tuple[ParsedEvent, str]], new: dict[str, int]) -> dict | None:
    """webhooks/add_opt_outs parameters for the newly stored events that opt their number out, or None."""
    opt = [(ev.from_phone, ev.dnc[1], ev.dnc[0], new[ev.dedupe_key]) for ev, _ in batch
           if ev.dnc and ev.from_phone and ev.dedupe_key in new]
    if not opt:
        return None
    return {"phones": [o[0] for o in opt], "reasons": [o[1] for o in opt], "sources": [o[2] for o in opt],
            "event_ids": [o[3] for o in opt]}


def _store(conn: Connection, batch: list[tuple[ParsedEvent, str]]) -> tuple[int, int, int]:
    events, requests = _insert_param(batch)
    new = {r[1]: r[0] for r in conn.execute(query("webhooks/insert_events"), {"events": events})}
    if (attach := _orphans(new, requests, {id(raw): raw for _, raw in batch})) is not None:
        conn.execute(query("webhooks/attach_body"), attach)
    added = 0
    if (opt := _opt_outs(batch, new)) is not None:
        added = len(conn.execute(query("webhooks/add_opt_outs"), opt).fetchall())
    changed = 0
    life = {new[ev.dedupe_key]: ev for ev, _ in batch if ev.lifecycle and ev.dedupe_key in new}
    if life:
        changed = _apply_lifecycle(conn, [(ev, event_id) for event_id, ev in sorted(life.items())])
    return len(new), added, changed


@functools.cache
def _psycopg_sql(name: str) -> str:
    """A named query (sql/queries/<name>.sql) in psycopg's own %(name)s parameter style, read once."""
    from sqlalchemy.dialects.postgresql import psycopg as dialect

    return query(name).compile(dialect=dialect.dialect()).string


async def store_async(conn: psycopg.AsyncConnection, batch: list[tuple[ParsedEvent, str]]) -> tuple[int, int]:
    """`store` for a batch without lifecycle events, on an asyncio psycopg connection in autocommit mode.
    (stored, opt-outs).

    The usual batch (Meta sends a status per request: every request has one event, none opts out) is ONE
    statement, which is its own transaction: one round trip, committed when it returns. Anything else (a
    request with several events, whose body may need webhooks/attach_body, or an opt-out) runs the same
    statements as `store` in one explicit transaction. (psycopg's pipeline mode, which would send BEGIN with the
    INSERT, cost more CPU per batch here than the round trip it saves.)"""
    events, requests = _insert_param(batch)
    if all(len(keys) == 1 for keys in requests.values()) and not any(ev.dnc for ev, _ in batch):
        cur = await conn.execute(_psycopg_sql("webhooks/insert_events"), {"events": events})
        return len(await cur.fetchall()), 0
    async with conn.transaction():
        cur = await conn.execute(_psycopg_sql("webhooks/insert_events"), {"events": events})
        new = {key: event_id for event_id, key in await cur.fetchall()}
        if (attach := _orphans(new, requests, {id(raw): raw for _, raw in batch})) is not None:
            await conn.execute(_psycopg_sql("webhooks/attach_body"), attach)
        added = 0
        if (opt := _opt_outs(batch, new)) is not None:
            cur = await conn.execute(_psycopg_sql("webhooks/add_opt_outs"), opt)
            added = len(await cur.fetchall())
    return len(new), added


def _failure(exc: BaseException) -> str:
    """An exception named without its text: a database error's text carries the statement's parameters,
    which here are webhook bodies with phone numbers."""
    sqlstate = getattr(getattr(exc, "orig", exc), "sqlstate", None)
    return f"{type(exc).__name__}" + (f" (sqlstate {sqlstate})" if sqlstate else "")


class _Slot:
    """A writer's database connection (asyncio psycopg), kept between batches: no pool checkout, pre-ping or
    worker thread per batch."""

    def __init__(self) -> None:
        self.conn: psycopg.AsyncConnection | None = None
        self.opened = 0.0

    async def connection(self, engine_factory: Callable[[], Engine], renew_s: float) -> psycopg.AsyncConnection:
        now = time.monotonic()
        if self.conn is not None and (self.conn.closed or now - self.opened >= renew_s):
            await self.close()
        if self.conn is None:
            # The engine's own connection parameters (URL, socket directory, credentials), psycopg's async class.
            # The factory is asked only here: resolving the app_db connection is not per-batch work.
            engine = engine_factory()
            cargs, cparams = engine.dialect.create_connect_args(engine.url)
            self.conn = await psycopg.AsyncConnection.connect(*cargs, **{"connect_timeout": 10, **cparams},
                                                              autocommit=True)
            self.opened = now
        return self.conn

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # a broken connection: nothing to close
                log.debug("closing a webhook writer connection failed", exc_info=True)


class GroupCommitWriter:
    """Requests wait for the commit of the batch they are in; one transaction per batch (group commit).

    `writers` batches may be committing at once, each on a connection of its own, on the event loop (asyncio
    psycopg), kept between batches and renewed after `renew_s` (so a changed app_db connection is picked up); a
    batch that fails drops its connection and the next one opens a new one. A batch with lifecycle events (a
    few a day) is stored by the synchronous `store` in a worker thread instead. Concurrent batches are safe: the
    dedupe key is unique (a replay in another batch waits for it and is skipped), and a deadlock between two of
    them fails one batch, whose requests are then retried one by one like any failed batch."""

    def __init__(self, engine_factory: Callable[[], Engine], stats: ReceiverStats, max_batch: int = 500,
                 writers: int = 1, renew_s: float = 300.0):
        self.engine_factory = engine_factory
        self.stats = stats
        self.max_batch = max_batch
        self.writers = max(1, writers)
        self.renew_s = renew_s
        self._queue: asyncio.Queue[_Pending] | None = None
        self._tasks: list[asyncio.Task] = []

    def _ensure_started(self) -> None:
        # A mounted sub-app gets no lifespan events, so the writers start with the first request (and again on
        # a new event loop, as in tests that serve the same app twice).
        if not self._tasks or any(t.done() for t in self._tasks):
            for t in self._tasks:
                t.cancel()
            self._queue = asyncio.Queue()
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._run(_Slot())) for _ in range(self.writers)]

    async def submit(self, events: list[ParsedEvent], raw: str) -> None:
        self._ensure_started()
        fut = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(events, raw, fut))
        await fut

    async def _run(self, slot: _Slot) -> None:
        try:
            while True:
                first = await self._queue.get()
                group, size = [first], len(first.events)
                while size < self.max_batch and not self._queue.empty():
                    p = self._queue.get_nowait()
                    group.append(p)
                    size += len(p.events)
                await self._commit(group, slot)
        finally:
            await slot.close()

    async def _store(self, slot: _Slot, batch: list[tuple[ParsedEvent, str]]) -> tuple[int, int, int]:
        if any(ev.lifecycle for ev, _ in batch):
            return await asyncio.to_thread(store, self.engine_factory(), batch)
        try:
            conn = await slot.connection(self.engine_factory, self.renew_s)
            return (*await store_async(conn, batch), 0)
        except BaseException:
            await slot.close()
            raise

    async def _commit(self, group: list[_Pending], slot: _Slot) -> None:
        batch = [(ev, p.raw) for p in group for ev in p.events]
        try:
            stored, opted, changed = await self._store(slot, batch)
        except Exception as exc:  # noqa: BLE001 - answered below: a 500 makes Meta retry later
            self.stats.store_failures += 1
            if len(group) > 1:
                # One bad request must not fail the others it was batched with: store them one by one.
                log.warning("storing %d webhook events from %d requests failed: %s; retrying per request",
                            len(batch), len(group), _failure(exc))
                for p in group:
                    await self._commit([p], slot)
                return
            log.error("storing %d webhook events failed: %s", len(batch), _failure(exc))
            if not group[0].done.done():
                group[0].done.set_exception(exc)
            return
        self.stats.commits += 1
        self.stats.events_stored += stored
        self.stats.duplicates += len(batch) - stored
        self.stats.opt_outs += opted
        self.stats.lifecycle_applied += changed
        for p in group:
            if not p.done.done():
                p.done.set_result(None)


def secrets_from_connection(conn_id: str = config.WHATSAPP_CONN_ID) -> ReceiverSecrets:
    from airflow.sdk import BaseHook

    extra = BaseHook.get_connection(conn_id).extra_dejson
    if not extra.get("app_secret") or not extra.get("verify_token"):
        raise RuntimeError(f"connection {conn_id!r} needs app_secret and verify_token extras for the webhook")
    previous, until = extra.get("previous_app_secret"), extra.get("previous_app_secret_until")
    if previous and not until:
        raise RuntimeError(f"connection {conn_id!r}: previous_app_secret needs previous_app_secret_until (an ISO "
                           "timestamp ending the overlap), or it would be accepted forever")
    try:
        until_at = dt.datetime.fromisoformat(until) if until else None
    except ValueError as exc:
        raise RuntimeError(f"connection {conn_id!r}: previous_app_secret_until {until!r} is not an ISO timestamp"
                           ) from exc
    if until_at is not None and until_at.tzinfo is None:
        raise RuntimeError(f"connection {conn_id!r}: previous_app_secret_until {until!r} needs a time zone")
    return ReceiverSecrets(extra["app_secret"], extra["verify_token"], previous or None, until_at)


class _BodyRejected(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_capped_body(receive: Callable[[], Any], declared: bytes | str | None, limit: int) -> bytes:
    """The request body read from the ASGI `receive`, refused with 413 as soon as it would pass `limit` bytes:
    a declared Content-Length above the limit is refused before reading anything, and a chunked or lying body
    is cut off at the chunk that would cross the limit, so at most `limit` bytes are ever held."""
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise _BodyRejected(400, "invalid Content-Length") from None
        if size > limit:
            raise _BodyRejected(413, f"body of {size} bytes is over the {limit}-byte limit")
    message = await receive()
    if message["type"] != "http.request":
        raise _BodyRejected(400, "client disconnected")
    body = message.get("body", b"")
    if len(body) > limit:
        raise _BodyRejected(413, f"body over the {limit}-byte limit")
    if not message.get("more_body", False):
        return body  # the usual case: the whole body in one message, no copy
    buf = bytearray(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _BodyRejected(400, "client disconnected")
        chunk = message.get("body", b"")
        if len(buf) + len(chunk) > limit:
            raise _BodyRejected(413, f"body over the {limit}-byte limit")
        buf += chunk
        if not message.get("more_body", False):
            return bytes(buf)


def _decode(raw: bytes) -> tuple[str, list[ParsedEvent]]:
    """The body as text (stored as raw_body) and its events; ValueError (msgspec's DecodeError is one) or
    RecursionError for a body that is not a WhatsApp webhook."""
    return raw.decode("utf-8"), parse_events(msgspec.json.decode(raw))


_PLAIN = [(b"content-type", b"text/plain; charset=utf-8")]


async def _send_text(send: Callable[[dict], Any], status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [*_PLAIN, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _route_path(scope: dict) -> str:
    """The path inside this app: a mounted app (the api-server's /whatsapp) sees the prefix in root_path."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


class ReceiverApp(FastAPI):
    """The receiver's FastAPI app, with POST /webhook answered straight from ASGI: Meta's status webhooks are
    thousands a second at 1,000 msg/s, and FastAPI's exception middlewares, router, Request and Response objects
    cost more per request than the ingest itself. Every other route (the GET handshake, /webhook/stats) goes
    through FastAPI; the declared POST route calls the same `ingest` (it is what an app reaching the router
    directly would run, and it documents the route)."""

    ingest: Callable[[dict, Callable[[], Any]], Any]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and _route_path(scope) == "/webhook":
            status, text = await self.ingest(scope, receive)
            await _send_text(send, status, text)
            return
        await super().__call__(scope, receive, send)


def create_app(engine_factory: Callable[[], Engine] | None = None,
               secrets_factory: Callable[[], ReceiverSecrets] | None = None,
               ops_auth: Callable[..., Any] | None = None,
               max_body_bytes: int | None = None,
               secrets_ttl_s: float | None = None,
               clock: Callable[[], float] | None = None):
    """The receiver app. `ops_auth` is a FastAPI dependency guarding the operational routes (stats): the
    api-server plugin passes Airflow's (a logged-in user); without it they are open, which only suits a
    standalone receiver on loopback (tests, benchmark). The Meta-facing routes never take it."""
    max_body_bytes = config.WEBHOOK_MAX_BODY_BYTES if max_body_bytes is None else max_body_bytes
    secrets_ttl_s = config.WEBHOOK_SECRETS_TTL_S if secrets_ttl_s is None else secrets_ttl_s
    if engine_factory is None:
        from include.core.db import get_engine

        engine_factory = get_engine
    secrets_factory = secrets_factory or secrets_from_connection
    clock = clock or time.monotonic
    cache: dict[str, Any] = {}

    def secrets() -> ReceiverSecrets:
        # Re-read every secrets_ttl_s so a rotated app secret takes effect without a restart. The first call
        # always reads (monotonic time may start near 0 after boot, so "older than the TTL" alone is not it).
        now = clock()
        if "value" not in cache or now - cache["at"] >= secrets_ttl_s:
            cache.update(value=secrets_factory(), at=now)
        return cache["value"]

    stats = ReceiverStats()
    writer = GroupCommitWriter(engine_factory, stats, max_batch=config.WEBHOOK_MAX_BATCH_EVENTS,
                               writers=config.WEBHOOK_WRITERS)
    app = ReceiverApp(title="WhatsApp webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.stats = stats

    async def ingest(scope: dict, receive: Callable[[], Any]) -> tuple[int, str]:
        """POST /webhook: (status, text) of the answer. Signature before parsing, parsing before storing, and
        the 200 only once the events are committed."""
        stats.requests += 1
        header = declared = None
        for name, value in scope["headers"]:
            if name == b"x-hub-signature-256":
                header = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
        if not header:
            stats.rejected_401 += 1
            return 401, "missing X-Hub-Signature-256"
        try:
            raw = await read_capped_body(receive, declared, max_body_bytes)
        except _BodyRejected as exc:
            if exc.status == 413:
                stats.rejected_413 += 1
            else:
                stats.bad_requests += 1
            log.warning("webhook body refused (%d): %s", exc.status, exc.reason)
            return exc.status, exc.reason
        which = signed_with(raw, header, secrets())
        if which is None:
            stats.rejected_403 += 1
            return 403, "signature mismatch"
        if which == "previous":
            stats.signed_with_previous_secret += 1  # Meta still signs with the old secret: rotation not done
        try:
            text, events = _decode(raw)
        except (ValueError, RecursionError) as exc:  # JSON, UTF-8 and structure errors are all ValueErrors
            # Signed by Meta but not understood: answer 400 so it is visible. The body holds phone numbers and
            # message texts, so the log gets the reason, the size and a digest to find it, never the body.
            stats.bad_requests += 1
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            log.error("unparseable signed webhook (%s): %d bytes, sha256 %s", reason, len(raw),
                      hashlib.sha256(raw).hexdigest())
            return 400, f"bad webhook body: {reason}"
        stats.events_received += len(events)
        if events:
            try:
                await writer.submit(events, text)
            except Exception:  # noqa: BLE001 - not stored: a 500 makes Meta retry later
                return 500, "not stored, retry"
        return 200, "ok"

    app.ingest = ingest

    @app.get("/webhook")
    async def verify(request: Request):
        q = request.query_params
        if q.get("hub.mode") == "subscribe" and hmac.compare_digest(q.get("hub.verify_token", "").encode(),
                                                                    secrets().verify_token.encode()):
            return PlainTextResponse(q.get("hub.challenge", ""))
        return PlainTextResponse("verification failed", status_code=403)

    @app.post("/webhook")
    async def receive(request: Request):
        status, text = await ingest(request.scope, request.receive)
        return PlainTextResponse(text, status_code=status)

    ops = [Depends(ops_auth)] if ops_auth is not None else []

    @app.get("/webhook/stats", dependencies=ops)
    async def webhook_stats():
        return JSONResponse(dict(stats.__dict__))

    return app


def standalone_app():
    """The receiver as its own process behind the same public URL, the production layout (README "Where the
    receiver runs"): the api-server's middlewares (JWT refresh, access log, gzip) cost ~10x the ingest itself.

        uvicorn --factory include.whatsapp.webhook_receiver:standalone_app --no-proxy-headers \\
            --host 0.0.0.0 --port 8090 --workers 2

    with the same Airflow configuration as the api-server: the `whatsapp_cloud` connection (app secret, verify
    token), `app_db`, and [api_auth] jwt_secret, so /webhook/stats takes an Airflow user's token as it does
    inside the api-server. The reverse proxy sends /whatsapp/webhook to this process's /webhook."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.core_api.security import requires_authenticated

    init_auth_manager()
    return create_app(ops_auth=requires_authenticated())
