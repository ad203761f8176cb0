"""The webhook bodies the sandbox sends, shaped after Meta's webhook reference (each builder names its page),
and the state changes that emit the lifecycle ones: template status and quality, phone-number quality,
throughput and messaging limit, account alerts and account-level errors.

The sandbox imitates Meta; it does not define it. Shapes come from Meta's reference pages under
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/ (and the
business-scoped user ID page for `user_id` / `recipient_user_id` / `from_user_id`); tests/contract holds a
fixture written from each page and checks the sandbox against it.

Transport-free like state.py: a body is handed to `sb.webhook_sink` (the dispatcher's send_now), which signs it
and posts it to the callback URL.
"""
from __future__ import annotations

import functools
import hashlib
import secrets
import time
from typing import Any

from include.whatsapp.platform_limits import THROUGHPUT_MPS, TIER_LIMITS

REFERENCE = "https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/"
BSUID_PAGE = "https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids"
ERROR_CODES_HREF = "/documentation/business-messaging/whatsapp/support/error-codes"  # as in Meta's examples

# error_data.details of the failures Meta reports in a `failed` status (the title is the code's title, and
# `message` equals `title`, as the status reference says).
STATUS_ERROR_DETAILS = {
    131026: "Message failed to send because the recipient cannot receive it: the number may not be on WhatsApp, "
            "may not have accepted the latest terms, or may be using an old WhatsApp version.",
    131049: "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
    131050: "Unable to deliver the message: the recipient has chosen to stop receiving marketing messages "
            "from this business.",
}

# Template statuses Meta reports (message_template_status_update `event` values that are statuses).
TEMPLATE_STATUSES = ("APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "IN_APPEAL", "PENDING_DELETION",
                     "DELETED", "LIMIT_EXCEEDED", "ARCHIVED")
QUALITY_SCORES = ("GREEN", "YELLOW", "RED", "UNKNOWN")
NUMBER_QUALITY = ("GREEN", "YELLOW", "RED", "NA", "UNKNOWN")
_ISO_BY_DIAL = (("971", "AE"), ("91", "IN"), ("44", "GB"), ("65", "SG"), ("61", "AU"), ("1", "US"))


def emit(sb, payload: dict) -> None:
    sink = getattr(sb, "webhook_sink", None)
    if sink is not None:
        sink(payload)


def _major(version: str) -> int:
    try:
        return int(str(version).lstrip("v").split(".")[0])
    except ValueError:
        return 99


@functools.lru_cache(maxsize=65_536)
def bsuid(wa_id: str, waba_id: str) -> str:
    """A business-scoped user ID as Meta formats it: the user's ISO 3166 alpha-2 country, a dot, then
    alphanumerics (e.g. "US.13491208655302741918"); stable per user and business (BSUID_PAGE)."""
    iso = next((iso for dial, iso in _ISO_BY_DIAL if wa_id.startswith(dial)), "IN")
    n = int(hashlib.sha256(f"{waba_id}:{wa_id}".encode()).hexdigest(), 16) % 10**20
    return f"{iso}.{n:020d}"


def contact(sb, wa_id: str, name: str = "Advisor") -> dict:
    """value.contacts[] of messages webhooks: profile.name, wa_id and (since 31 Mar 2026) user_id (BSUID_PAGE)."""
    return {"profile": {"name": name}, "wa_id": wa_id, "user_id": bsuid(wa_id, sb.settings.waba_id)}


def error_object(code: int, title: str) -> dict:
    """One errors[] item of a failed status or of an account-level errors webhook:
    REFERENCE messages/status and messages/errors."""
    return {"code": code, "title": title, "message": title,
            "error_data": {"details": STATUS_ERROR_DETAILS.get(code, title)}, "href": ERROR_CODES_HREF}


# -- messages webhooks --------------------------------------------------------------------------------------
def status_value(sb, entry, statuses: list[tuple[str, float, dict | None]]) -> dict:
    """value of a status messages webhook (REFERENCE messages/status, with BSUID_PAGE's additions):
    * contacts[] beside statuses for sent, delivered and read ("omitted entirely for failed");
    * each status: id, status, timestamp, recipient_id, recipient_user_id, biz_opaque_callback_data when sent
      with one;
    * pricing (billable, pricing_model PMP, type regular, category of the template) "only included with sent
      status, and one of either delivered or read status";
    * conversation on the same statuses only for webhooks v23.0 and older (`webhooks.version`): omitted from
      v24.0 unless in a free entry point window, which a template send never is;
    * failed: errors[] with code, title, message, error_data.details and href; no pricing.
    """
    from devtools.sandbox.state import ERROR_TITLES

    wa_id = entry.to.lstrip("+")
    tpl = sb.templates.get((entry.template, entry.language))
    category = (tpl.category if tpl else "MARKETING").lower()
    delivered_planned = any(s == "delivered" for s, _, _ in sb.planned_statuses(entry))
    with_conversation = _major(sb.webhooks.version) < 24
    items = []
    for status, ts, error in statuses:
        item: dict[str, Any] = {"id": entry.wamid, "status": status, "timestamp": str(int(ts)),
                                "recipient_id": wa_id, "recipient_user_id": bsuid(wa_id, sb.settings.waba_id)}
        if entry.biz_opaque_callback_data:
            item["biz_opaque_callback_data"] = entry.biz_opaque_callback_data
        if status == "failed":
            code = int((error or {}).get("code", 131000))
            item["errors"] = [error_object(code, (error or {}).get("title") or ERROR_TITLES.get(code, "Error"))]
        elif status in ("sent", "delivered") or (status == "read" and not delivered_planned):
            if with_conversation:
                conv: dict[str, Any] = {"id": hashlib.md5(entry.wamid.encode()).hexdigest()}
                if status == "sent":
                    conv["expiration_timestamp"] = str(int(ts) + 86_400)
                conv["origin"] = {"type": category}
                item["conversation"] = conv
            # Per-message pricing since 1 July 2025 (the spend budget bills from it, include/delivery/budget.py):
            # https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status
            # (pricing: billable, pricing_model "PMP", type regular / free_customer_service / free_entry_point,
            # category = the template's: marketing, utility, authentication, ...), on sent and delivered-or-read.
            item["pricing"] = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": category}
        items.append(item)
    value: dict[str, Any] = {}
    if any(s != "failed" for s, _, _ in statuses):
        value["contacts"] = [contact(sb, wa_id)]
    value["statuses"] = items
    return value


def inbound_value(sb, wa_id: str, pnid: str, kind: str = "text", text: str = "", payload: str | None = None,
                  reply_id: str | None = None, interactive_type: str = "button_reply", description: str | None = None,
                  name: str = "Advisor") -> tuple[dict, str]:
    """value of an incoming messages webhook, and the message id:
    * text: REFERENCE messages/text — {"from", "id", "timestamp", "type": "text", "text": {"body"}};
    * button (a template's quick-reply button, e.g. "Stop promotions"): REFERENCE messages/button —
      {"context": {"from", "id"}, ..., "type": "button", "button": {"payload", "text"}};
    * interactive (a reply button or list row): REFERENCE messages/interactive —
      {"context", ..., "type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id",
      "title"}}} or list_reply {"id", "title", "description"};
    * from_user_id and contacts[].user_id from BSUID_PAGE.
    A reply's context is the latest message the sandbox accepted for that user (the one with the button)."""
    number = sb.numbers.get(pnid)
    msg_id = "wamid." + secrets.token_hex(16)
    msg: dict[str, Any] = {}
    if kind in ("button", "interactive"):
        to = "+" + wa_id
        last = next((e.wamid for e in reversed(sb.ledger) if e.to == to), None)
        msg["context"] = {"from": number.display_phone_number.lstrip("+") if number else "",
                          "id": last or "wamid." + secrets.token_hex(16)}
    msg.update({"from": wa_id, "from_user_id": bsuid(wa_id, sb.settings.waba_id), "id": msg_id,
                "timestamp": str(int(time.time())), "type": kind})
    if kind == "text":
        msg["text"] = {"body": text}
    elif kind == "button":
        msg["button"] = {"payload": payload if payload is not None else text, "text": text}
    elif kind == "interactive":
        reply: dict[str, Any] = {"id": reply_id or text.lower().replace(" ", "_"), "title": text}
        if interactive_type == "list_reply":
            reply["description"] = description or ""
        msg["interactive"] = {"type": interactive_type, interactive_type: reply}
    else:
        raise ValueError(f"inbound type {kind!r} is not modelled (text, button, interactive)")
    return {"contacts": [contact(sb, wa_id, name)], "messages": [msg]}, msg_id


def account_error_value(code: int, title: str, details: str | None = None) -> dict:
    """value.errors[] of a messages webhook: a system-, app- or account-level error (REFERENCE messages/errors)."""
    err = error_object(code, title)
    if details:
        err["error_data"] = {"details": details}
    return {"errors": [err]}


# -- lifecycle webhooks (WABA-level fields: entry has `time`, the value no metadata) -------------------------
def lifecycle_envelope(sb, field: str, value: dict, at: float | None = None) -> dict:
    return {"entry": [{"id": sb.settings.waba_id, "time": int(at if at is not None else time.time()),
                       "changes": [{"value": value, "field": field}]}],
            "object": "whatsapp_business_account"}


def _template_ref(tpl) -> dict:
    return {"message_template_id": int(tpl.id), "message_template_name": tpl.name,
            "message_template_language": tpl.language}


def template_status_value(tpl, event: str, reason: str | None = "NONE", other_info: dict | None = None,
                          disable_info: dict | None = None, rejection_info: dict | None = None) -> dict:
    """REFERENCE message_template_status_update: event, message_template_id (integer), name, language, reason
    (NONE when paused or approved, a rejection reason, null when scheduled for deletion), category;
    disable_info only when disabled, other_info (title FIRST_PAUSE / SECOND_PAUSE / UNPAUSE / DISABLED, and a
    description) on pause events, rejection_info only for INVALID_FORMAT rejections."""
    value = {"event": event, **_template_ref(tpl), "reason": reason, "message_template_category": tpl.category}
    if disable_info is not None:
        value["disable_info"] = disable_info
    if other_info is not None:
        value["other_info"] = other_info
    if rejection_info is not None:
        value["rejection_info"] = rejection_info
    return value


def template_quality_value(tpl, previous: str, new: str) -> dict:
    """REFERENCE message_template_quality_update: previous_quality_score, new_quality_score and the template."""
    return {"previous_quality_score": previous, "new_quality_score": new, **_template_ref(tpl)}


def phone_quality_value(sb, number, event: str, old_tier: str | None = None, tier: str | None = None) -> dict:
    """REFERENCE phone_number_quality_update: display_phone_number (digits), event and
    max_daily_conversations_per_business (the portfolio's messaging limit). current_limit and old_limit "will be
    removed in February, 2026", so they are sent only with `webhooks.legacy_limit_fields` (old_limit only for
    messaging-limit changes; for THROUGHPUT_UPGRADE current_limit is TIER_UNLIMITED, "higher throughput")."""
    tier = tier or sb.settings.messaging_tier
    value: dict[str, Any] = {"display_phone_number": number.display_phone_number.lstrip("+"), "event": event}
    if sb.webhooks.legacy_limit_fields:
        if old_tier is not None:
            value["old_limit"] = old_tier
        value["current_limit"] = "TIER_UNLIMITED" if event == "THROUGHPUT_UPGRADE" else tier
    value["max_daily_conversations_per_business"] = tier
    return value


def account_alert_value(entity_type: str, entity_id: str, alert_type: str, severity: str, status: str,
                        description: str) -> dict:
    """REFERENCE account_alerts: entity_type, entity_id and alert_info {alert_severity, alert_status,
    alert_type, alert_description}."""
    return {"entity_type": entity_type, "entity_id": entity_id,
            "alert_info": {"alert_severity": severity, "alert_status": status, "alert_type": alert_type,
                           "alert_description": description}}


# -- state changes that emit ----------------------------------------------------------------------------------
def set_template_status(sb, tpl, status: str, reason: str | None = None, at: float | None = None) -> bool:
    """Change a template's status and emit message_template_status_update; False when nothing changed.
    Pauses follow Meta's template pausing: the first is FIRST_PAUSE, later ones SECOND_PAUSE; leaving PAUSED
    for APPROVED is an UNPAUSE."""
    if status not in TEMPLATE_STATUSES:
        raise ValueError(f"template status must be one of {', '.join(TEMPLATE_STATUSES)}")
    old = tpl.status
    if status == old:
        return False
    tpl.status = status
    other = disable = rejection = None
    event_reason: str | None = "NONE"
    if status == "PAUSED":
        pauses = sb.template_pauses
        pauses[(tpl.name, tpl.language)] += 1
        first = pauses[(tpl.name, tpl.language)] == 1
        other = {"title": "FIRST_PAUSE" if first else "SECOND_PAUSE",
                 "description": f"Your WhatsApp message template {tpl.name} has been paused for "
                                f"{3 if first else 6} hours due to low quality."}
    elif status == "APPROVED" and old == "PAUSED":
        other = {"title": "UNPAUSE", "description": "Your WhatsApp message template has been unpaused."}
    elif status == "DISABLED":
        disable = {"disable_date": int(at if at is not None else time.time())}
        other = {"title": "DISABLED", "description": f"Your WhatsApp message template {tpl.name} has been "
                                                     "disabled due to low quality."}
    elif status == "REJECTED":
        event_reason = reason or "INVALID_FORMAT"
        if event_reason == "INVALID_FORMAT":
            rejection = {"reason": "Your template has parameters placed next to each other (like {{1}}{{2}}) "
                                   "without text or punctuation between them.",
                         "recommendation": "Separate parameters with descriptive text and ensure each parameter "
                                           "is clearly contextualized."}
    elif status == "PENDING_DELETION":
        event_reason = None  # "If the template is scheduled for deletion, the value is null"
    if reason is not None and status != "REJECTED":
        event_reason = reason
    emit(sb, lifecycle_envelope(sb, "message_template_status_update",
                                template_status_value(tpl, status, event_reason, other, disable, rejection), at))
    return True


def set_template_quality(sb, tpl, score: str, at: float | None = None) -> bool:
    if score not in QUALITY_SCORES:
        raise ValueError(f"quality_score must be one of {', '.join(QUALITY_SCORES)}")
    old = tpl.quality_score
    if score == old:
        return False
    tpl.quality_score = score
    emit(sb, lifecycle_envelope(sb, "message_template_quality_update", template_quality_value(tpl, old, score), at))
    return True


def set_number_quality(sb, number, rating: str, at: float | None = None) -> bool:
    """Change a number's quality rating. Reaching RED emits phone_number_quality_update FLAGGED ("Flagged status
    occurs when the quality rating reaches a low state"); leaving RED emits UNFLAGGED. GREEN <-> YELLOW has no
    documented webhook, so none is sent (GET /<phone-number-id> shows it)."""
    if rating not in NUMBER_QUALITY:
        raise ValueError(f"quality_rating must be one of {', '.join(NUMBER_QUALITY)}")
    old = number.quality_rating
    number.quality_rating = rating
    event = "FLAGGED" if rating == "RED" and old != "RED" else "UNFLAGGED" if old == "RED" and rating != "RED" \
        else None
    if event:
        emit(sb, lifecycle_envelope(sb, "phone_number_quality_update", phone_quality_value(sb, number, event), at))
    return event is not None


def set_throughput(sb, number, level: str, at: float | None = None) -> bool:
    """Change a number's throughput level; reaching HIGH emits THROUGHPUT_UPGRADE (no downgrade is documented)."""
    if level not in THROUGHPUT_MPS:
        raise ValueError(f"throughput_level must be one of {', '.join(THROUGHPUT_MPS)}")
    old = number.throughput_level
    number.throughput_level = level
    if level == "HIGH" and old != "HIGH":
        emit(sb, lifecycle_envelope(sb, "phone_number_quality_update",
                                    phone_quality_value(sb, number, "THROUGHPUT_UPGRADE"), at))
        return True
    return False


def _tier_rank(tier: str) -> float:
    limit = TIER_LIMITS.get(tier, 0)
    return float("inf") if limit is None else float(limit)


def messaging_tier_changed(sb, old: str, new: str, at: float | None = None) -> int:
    """The portfolio's messaging limit changed: UPGRADE or DOWNGRADE for every number (Meta's older
    phone_number_quality_update events for messaging-limit changes). Returns how many were emitted."""
    if old == new or old not in TIER_LIMITS or new not in TIER_LIMITS:
        return 0
    event = "UPGRADE" if _tier_rank(new) > _tier_rank(old) else "DOWNGRADE"
    for number in sb.numbers.values():
        emit(sb, lifecycle_envelope(sb, "phone_number_quality_update",
                                    phone_quality_value(sb, number, event, old_tier=old, tier=new), at))
    return len(sb.numbers)


def next_fault_at(sb) -> float | None:
    """When the next timed fault (template pause, quality RED) is due, in time.time() seconds."""
    due = [*sb.faults.template_pause_at.values(), *sb.faults.quality_red_at.values()]
    return min(due) if due else None
