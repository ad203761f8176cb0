"""WhatsApp Cloud API client (httpx; async for bulk sends, sync for checks) and its Airflow hook.

Errors are classified by the Graph error `code`, never by HTTP status alone; the whole table is
ERROR_CLASSES below. Timeouts are explicit, connections pooled, the access token never logged
and phone numbers masked in every log line.

Connection `whatsapp_cloud`: host = Graph base URL, password = access token,
extras = {"waba_id", "app_secret", "api_version", "verify_token"}.
"""
from __future__ import annotations

import datetime as dt

import json
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
import msgspec

from include.core import config, http_clients
from include.core.phones import mask_phone
from include.whatsapp.platform_limits import TIER_LIMITS

log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "v21.0"


class ErrorClass(StrEnum):
    THROUGHPUT = "throughput"                    # back off, then retry
    PAIR_RATE = "pair_rate"                      # back off 4^x s for that recipient only
    TRANSIENT = "transient"                      # retry (after reconciling if the outcome is unknown)
    AUTH = "auth"                                # fatal for the run; page
    TEMPLATE = "template"                        # switch to the backup variant or fallback
    PERMANENT_RECIPIENT = "permanent_recipient"  # never retried
    POLICY = "policy"                            # stop using that number
    INVALID_REQUEST = "invalid_request"          # our bug or bad data; never retried


# Every code the pipeline acts on, with its class. A code missing here is unknown: the sender falls back
# to the HTTP status (a 5xx is retried within the run), and ops_retry_failed_deliveries never re-sends it.
# Sources (Meta, WhatsApp Cloud API error codes):
#   https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes/
#   https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
#   130472: https://developers.facebook.com/docs/whatsapp/cloud-api/guides/experiments
#   1330xx (registration): https://developers.facebook.com/docs/graph-api/reference/whats-app-business-account-to-number-current-status/register/
ERROR_CLASSES: dict[int, ErrorClass] = {
    # Throttling: back off, then retry.
    130429: ErrorClass.THROUGHPUT,   # Rate limit hit (Cloud API throughput reached)
    80007: ErrorClass.THROUGHPUT,    # Rate limit issues (WABA rate limit)
    4: ErrorClass.THROUGHPUT,        # API Too Many Calls
    131056: ErrorClass.PAIR_RATE,    # (Business, Consumer) pair rate limit hit
    # Meta-side trouble: retry.
    131000: ErrorClass.TRANSIENT,    # Something went wrong
    131016: ErrorClass.TRANSIENT,    # Service unavailable
    2: ErrorClass.TRANSIENT,         # API Service: temporary downtime or overload
    131057: ErrorClass.TRANSIENT,    # Account in maintenance mode (e.g. a throughput upgrade)
    133004: ErrorClass.TRANSIENT,    # Server temporarily unavailable
    # Token, permissions or the whole account: stop the run and page (another number will not help).
    0: ErrorClass.AUTH,              # AuthException
    3: ErrorClass.AUTH,              # API Method: capability or permissions issue
    10: ErrorClass.AUTH,             # Permission denied
    190: ErrorClass.AUTH,            # Access token has expired
    **{c: ErrorClass.AUTH for c in range(200, 300)},  # API Permission
    131005: ErrorClass.AUTH,         # Access denied
    131031: ErrorClass.AUTH,         # Account has been locked (WABA restricted/disabled, or two-step PIN mismatch)
    131042: ErrorClass.AUTH,         # Business eligibility payment issue
    # Templates: the backup variant or fallback (132001/132015/132016), else never retried as is.
    132000: ErrorClass.TEMPLATE,     # Template param count mismatch
    132001: ErrorClass.TEMPLATE,     # Template does not exist
    132005: ErrorClass.TEMPLATE,     # Template hydrated text too long
    132007: ErrorClass.TEMPLATE,     # Template format character policy violated
    132012: ErrorClass.TEMPLATE,     # Template parameter format mismatch
    132015: ErrorClass.TEMPLATE,     # Template is paused
    132016: ErrorClass.TEMPLATE,     # Template is disabled
    132068: ErrorClass.TEMPLATE,     # Flow is blocked
    132069: ErrorClass.TEMPLATE,     # Flow is throttled
    # The recipient: never retried (resending gives the same answer).
    131026: ErrorClass.PERMANENT_RECIPIENT,  # Message undeliverable
    131047: ErrorClass.PERMANENT_RECIPIENT,  # Re-engagement message (outside the 24 h window)
    131049: ErrorClass.PERMANENT_RECIPIENT,  # Meta chose not to deliver (per-user marketing limit)
    131050: ErrorClass.PERMANENT_RECIPIENT,  # User has stopped marketing messages
    131021: ErrorClass.PERMANENT_RECIPIENT,  # Recipient cannot be sender
    130472: ErrorClass.PERMANENT_RECIPIENT,  # User's number is part of an experiment ("resending gives the same error")
    130497: ErrorClass.PERMANENT_RECIPIENT,  # Business account restricted from messaging users in this country
    # The sending number: stop using it (rotate to the hot spare).
    368: ErrorClass.POLICY,          # Temporarily blocked for policies violations
    131048: ErrorClass.POLICY,       # Spam rate limit hit
    33: ErrorClass.POLICY,           # Parameter value is not valid (the business phone number was deleted)
    131037: ErrorClass.POLICY,       # Display name needs approval before messages can be sent
    131045: ErrorClass.POLICY,       # Incorrect certificate (phone number registration error)
    133000: ErrorClass.POLICY,       # Incomplete deregistration
    133005: ErrorClass.POLICY,       # Two-step verification PIN mismatch
    133006: ErrorClass.POLICY,       # Phone number re-verification needed
    133008: ErrorClass.POLICY,       # Too many two-step verification PIN guesses
    133009: ErrorClass.POLICY,       # Two-step verification PIN guessed too fast
    133010: ErrorClass.POLICY,       # Account (phone number) not registered
    133015: ErrorClass.POLICY,       # Wait a few minutes before registering this number
    133016: ErrorClass.POLICY,       # Register/deregister rate limit exceeded
    # Our request or data: never retried.
    100: ErrorClass.INVALID_REQUEST,     # Invalid parameter
    131008: ErrorClass.INVALID_REQUEST,  # Required parameter is missing
    131009: ErrorClass.INVALID_REQUEST,  # Parameter value is not valid
    131051: ErrorClass.INVALID_REQUEST,  # Unsupported message type
    131052: ErrorClass.INVALID_REQUEST,  # Media download error
    131053: ErrorClass.INVALID_REQUEST,  # Media upload error (inspect the media file)
    135000: ErrorClass.INVALID_REQUEST,  # Generic user error
    # Not Graph codes: what the sender stores as deliveries.error_code when a response carried no Graph
    # error code, only an HTTP status (no WhatsApp Graph code uses these numbers).
    429: ErrorClass.THROUGHPUT,
    500: ErrorClass.TRANSIENT, 502: ErrorClass.TRANSIENT, 503: ErrorClass.TRANSIENT, 504: ErrorClass.TRANSIENT,
}
RETRYABLE = frozenset({ErrorClass.THROUGHPUT, ErrorClass.PAIR_RATE, ErrorClass.TRANSIENT})
OPT_OUT_CODES = frozenset({131050})  # the user stopped marketing messages: propose DNC


def classify(code: int | None, http_status: int | None = None, is_transient: bool | None = None) -> ErrorClass:
    """The class of a Graph error: by code first (ERROR_CLASSES). Only for a code missing from the table: Graph's
    own `is_transient: true` makes it transient, and so does a 5xx (the one use of the HTTP status, which Meta says
    not to build on: https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes)."""
    if code is not None and code in ERROR_CLASSES:
        return ERROR_CLASSES[code]
    if code is None and http_status in ERROR_CLASSES:
        # No Graph code at all (a proxy's or load balancer's answer): the same row of the table that
        # ops_retry_failed_deliveries reads for the HTTP status the sender stores (429 throttled, 5xx transient).
        return ERROR_CLASSES[http_status]
    if is_transient:
        return ErrorClass.TRANSIENT
    if http_status is not None and http_status >= 500:
        return ErrorClass.TRANSIENT
    return ErrorClass.INVALID_REQUEST


class WhatsAppError(Exception):
    """A failed call. From a Graph error body: `code`, `error_data.details`, `fbtrace_id`, and where Meta sends
    them `error_subcode`, `error_user_title`, `error_user_msg` (shown in str()) and `is_transient`
    (https://developers.facebook.com/docs/graph-api/guides/error-handling). Also raised, with code None, for a
    success response that lacks a field the client needs (the message names the field)."""

    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None,
                 details: str = "", fbtrace_id: str | None = None, outcome_unknown: bool = False,
                 error_subcode: int | None = None, error_user_title: str | None = None,
                 error_user_msg: str | None = None, is_transient: bool | None = None, error_type: str | None = None):
        self.code = code
        self.http_status = http_status
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.outcome_unknown = outcome_unknown
        self.error_subcode = error_subcode
        self.error_user_title = error_user_title
        self.error_user_msg = error_user_msg
        self.is_transient = is_transient
        self.error_type = error_type
        self.error_class = ErrorClass.TRANSIENT if code is None and http_status is None \
            else classify(code, http_status, is_transient)
        super().__init__(f"{message}: {error_user_msg}" if error_user_msg and error_user_msg not in message
                         else message)

    @property
    def retryable(self) -> bool:
        return self.error_class in RETRYABLE

    @property
    def proposes_dnc(self) -> bool:
        return self.code in OPT_OUT_CODES

    @property
    def title(self) -> str:
        return f"{self.code or self.http_status or 'transport'}: {self}"[:300]


@dataclass(frozen=True)
class SendResult:
    wamid: str
    wa_id: str | None
    latency_ms: int
    # messages[0].message_status of a template send: "accepted", or "held_for_quality_assessment" when Meta paces
    # the template (held messages are sent later or dropped with a failed webhook 132015); None when absent.
    # https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-pacing
    message_status: str | None = None

    @property
    def held_for_quality_assessment(self) -> bool:
        return self.message_status == HELD_FOR_QUALITY_ASSESSMENT


HELD_FOR_QUALITY_ASSESSMENT = "held_for_quality_assessment"
# whatsapp_business_manager_messaging_limit values are Meta's tier enum (TIER_50, TIER_250, TIER_2K, TIER_10K,
# TIER_100K, TIER_UNLIMITED, TIER_NOT_SET: https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/phone_number_quality_update)
# and equal the project's names in platform_limits.TIER_LIMITS; anything else (TIER_NOT_SET, a legacy per-number
# TIER_1K, a value Meta adds later, or no field at all) is reported as UNKNOWN_TIER, never guessed.
UNKNOWN_TIER = "UNKNOWN"
PHONE_NUMBER_FIELDS = ("id", "display_phone_number", "verified_name", "quality_rating", "throughput", "status",
                       "name_status", "whatsapp_business_manager_messaging_limit")
TEMPLATE_FIELDS = ("id", "name", "language", "status", "category", "parameter_format", "components", "quality_score")


def messaging_tier_of(info: dict) -> str:
    """The project's tier name (a TIER_LIMITS key) from a phone-number response, or UNKNOWN_TIER. Reads only
    `whatsapp_business_manager_messaging_limit` (`messaging_limit_tier` is deprecated: see
    https://developers.facebook.com/documentation/business-messaging/whatsapp/messaging-limits#via-api)."""
    raw = info.get("whatsapp_business_manager_messaging_limit")
    if isinstance(raw, dict):  # tolerate an object form ({"current_limit": "TIER_2K"}) should Meta expand it
        raw = raw.get("current_limit") or raw.get("tier")
    tier = raw.strip().upper() if isinstance(raw, str) else ""
    return tier if tier in TIER_LIMITS else UNKNOWN_TIER


class PhoneNumber(dict):
    """GET /{phone-number-id} as Meta answered it (a dict, so unknown fields are kept and callers may read any
    field), with the fields the pipeline acts on as properties. `id` is required; a missing tier is UNKNOWN_TIER."""

    @classmethod
    def parse(cls, data: Any) -> PhoneNumber:
        obj = _require_object(data, "phone number")
        _require_str(obj, "id", "phone number")
        return cls(obj)

    @property
    def messaging_tier(self) -> str:
        return messaging_tier_of(self)

    @property
    def quality_rating(self) -> str:
        return str(self.get("quality_rating") or "UNKNOWN")

    @property
    def status(self) -> str:
        return str(self.get("status") or "UNKNOWN")

    @property
    def throughput_level(self) -> str | None:
        level = (self.get("throughput") or {}).get("level") if isinstance(self.get("throughput"), dict) else None
        return str(level) if level else None


class MediaInfo(dict):
    """GET /{media-id}: {messaging_product, url, mime_type, sha256, file_size, id}
    (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media#get-media-url).
    `url`, `mime_type` and `id` are required; `file_size` may come as a string or a number."""

    @classmethod
    def parse(cls, data: Any) -> MediaInfo:
        obj = _require_object(data, "media")
        for name in ("id", "url", "mime_type"):
            _require_str(obj, name, "media")
        return cls(obj)

    @property
    def file_size(self) -> int | None:
        try:
            return int(self["file_size"])
        except (KeyError, TypeError, ValueError):
            return None


def _require_object(data: Any, what: str) -> dict:
    if not isinstance(data, dict):
        raise WhatsAppError(f"{what} response is not a JSON object", http_status=200)
    return data


def _require_str(obj: dict, name: str, what: str) -> str:
    value = obj.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise WhatsAppError(f"{what} response has no {name!r} (required field missing)", http_status=200)
    return value


def _template_record(item: Any, index: int) -> dict:
    """One message template of a list page: unknown fields kept; id, name, language and status required."""
    obj = _require_object(item, f"message template #{index}")
    for name in ("id", "name", "language", "status"):
        _require_str(obj, name, f"message template #{index}")
    return obj


@dataclass(frozen=True)
class WhatsAppSettings:
    base_url: str
    access_token: str = field(repr=False)
    waba_id: str
    app_secret: str = field(default="", repr=False)
    api_version: str = DEFAULT_API_VERSION
    verify_token: str = field(default="", repr=False)
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    max_connections: int = 32

    @classmethod
    def from_connection(cls, conn: Any) -> WhatsAppSettings:
        extra = conn.extra_dejson if getattr(conn, "extra", None) else {}
        host = (conn.host or "").rstrip("/")
        if not host:
            raise ValueError(f"connection {conn.conn_id!r} has no host (the Graph API base URL)")
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}"
        if not conn.password:
            raise ValueError(f"connection {conn.conn_id!r} has no password (the access token)")
        if not extra.get("waba_id"):
            raise ValueError(f"connection {conn.conn_id!r} has no waba_id in its extras")
        return cls(base_url=host, access_token=conn.password, waba_id=str(extra["waba_id"]),
                   app_secret=str(extra.get("app_secret", "")),
                   api_version=str(extra.get("api_version", DEFAULT_API_VERSION)),
                   verify_token=str(extra.get("verify_token", "")),
                   connect_timeout_s=float(extra.get("connect_timeout_s", 3.0)),
                   read_timeout_s=float(extra.get("read_timeout_s", 10.0)))

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.read_timeout_s, connect=self.connect_timeout_s, pool=self.read_timeout_s)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}", "Content-Type": "application/json"}

    def url(self, *parts: str) -> str:
        return "/".join([self.base_url, self.api_version, *parts])


def build_template_message(to: str, template: str, language: str, body_params: list[str] | tuple[str, ...] = (),
                           image_link: str | None = None, image_id: str | None = None,
                           biz_opaque_callback_data: str | None = None) -> dict:
    """The JSON body of a template send with an optional image header (by link or media id)."""
    components: list[dict] = []
    if image_link or image_id:
        image = {"link": image_link} if image_link else {"id": image_id}
        components.append({"type": "header", "parameters": [{"type": "image", "image": image}]})
    if body_params:
        components.append({"type": "body", "parameters": [{"type": "text", "text": str(p)} for p in body_params]})
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
                            "type": "template",
                            "template": {"name": template, "language": {"code": language}, "components": components}}
    if biz_opaque_callback_data:
        body["biz_opaque_callback_data"] = biz_opaque_callback_data
    return body


def _error_from_response(resp: httpx.Response) -> WhatsAppError:
    return _error_from_payload(resp.status_code, resp.content)


def _error_from_payload(status: int, payload: bytes) -> WhatsAppError:
    try:
        err = json.loads(payload).get("error") or {}
    except (ValueError, AttributeError):
        err = {}
    if not isinstance(err, dict):
        err = {}

    def _int(name: str) -> int | None:
        value = err.get(name)
        if isinstance(value, str) and value.isdigit():  # some proxies stringify codes
            value = int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def _str(name: str) -> str | None:
        value = err.get(name)
        return value if isinstance(value, str) and value else None

    details = (err.get("error_data") or {}).get("details", "") if isinstance(err.get("error_data"), dict) else ""
    transient = err.get("is_transient")
    return WhatsAppError(_str("message") or f"HTTP {status}", code=_int("code"), http_status=status,
                         details=details if isinstance(details, str) else str(details),
                         fbtrace_id=_str("fbtrace_id"), error_subcode=_int("error_subcode"),
                         error_user_title=_str("error_user_title"), error_user_msg=_str("error_user_msg"),
                         is_transient=transient if isinstance(transient, bool) else None, error_type=_str("type"))


def _transport_error(exc: httpx.HTTPError) -> WhatsAppError:
    # Connect failures mean the request never left; anything later means it may have been processed.
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return WhatsAppError(f"{type(exc).__name__}: {exc}", outcome_unknown=not never_sent)


def _success_payload(status: int, payload: bytes, started: float) -> SendResult:
    """{"messaging_product", "contacts": [{"input", "wa_id"}], "messages": [{"id", "message_status"?}]}
    (https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages): unknown
    fields are ignored; without messages[0].id the outcome is unknown (the message may have been accepted)."""
    try:
        data = json.loads(payload)
    except ValueError:
        data = None
    messages = data.get("messages") if isinstance(data, dict) else None
    first = messages[0] if isinstance(messages, list) and messages else None
    wamid = first.get("id") if isinstance(first, dict) else None
    if not isinstance(wamid, str) or not wamid:
        raise WhatsAppError(f"send answered {status} without messages[0].id (required field missing)",
                            http_status=status, outcome_unknown=True)
    contacts = data.get("contacts")
    contact = contacts[0] if isinstance(contacts, list) and contacts and isinstance(contacts[0], dict) else {}
    wa_id = contact.get("wa_id")
    message_status = first.get("message_status")
    return SendResult(wamid, wa_id if isinstance(wa_id, str) else None, int((time.perf_counter() - started) * 1000),
                      message_status if isinstance(message_status, str) else None)


class AsyncWhatsAppClient:
    """Bulk sending. One instance per sender task; share it across that task's coroutines.

    Built on aiohttp: its C-accelerated HTTP parser costs far less CPU per request than httpx, which
    matters when several senders, PostgreSQL and the sandbox share 2 cores (httpx measured ~250
    req/s per process here and also slowed sharply past ~8 connections per client).
    """

    def __init__(self, settings: WhatsAppSettings):
        self.settings = settings
        self._session = None
        self._urls: dict[str, Any] = {}  # phone_number_id -> its messages URL, parsed once (yarl.URL)

    async def __aenter__(self) -> AsyncWhatsAppClient:
        self._open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def _open(self):
        if self._session is None:
            import aiohttp

            # No cookie jar: the Graph API authenticates with the bearer token, and a jar filters and stores
            # cookies on every request and response (~15% of the client's CPU per send, measured).
            self._session = aiohttp.ClientSession(
                headers=self.settings.headers,
                connector=aiohttp.TCPConnector(limit=self.settings.max_connections, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=None, connect=self.settings.connect_timeout_s,
                                              sock_read=self.settings.read_timeout_s),
                cookie_jar=aiohttp.DummyCookieJar(), raise_for_status=False)
        return self._session

    def _messages_url(self, phone_number_id: str):
        url = self._urls.get(phone_number_id)
        if url is None:
            import yarl

            url = self._urls[phone_number_id] = yarl.URL(self.settings.url(phone_number_id, "messages"))
        return url

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_template(self, phone_number_id: str, to: str, template: str, language: str,
                            body_params: list[str] | tuple[str, ...] = (), image_link: str | None = None,
                            image_id: str | None = None, biz_opaque_callback_data: str | None = None) -> SendResult:
        import aiohttp

        # Bytes, not json=: the session's headers already say application/json, and aiohttp's JSON payload
        # would encode to str and then to bytes again.
        body = _encode_json(build_template_message(to, template, language, body_params, image_link, image_id,
                                                   biz_opaque_callback_data))
        started = time.perf_counter()
        try:
            async with self._open().post(self._messages_url(phone_number_id), data=body) as resp:
                status, payload = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            err = _aiohttp_error(exc)
            log.info("send to %s via %s: %s", mask_phone(to), phone_number_id, err)
            raise err from None
        if status == 200:
            return _success_payload(status, payload, started)
        err = _error_from_payload(status, payload)
        log.debug("send to %s via %s rejected: code=%s class=%s", mask_phone(to), phone_number_id, err.code,
                  err.error_class)
        raise err


_encode_json = msgspec.json.Encoder().encode
"""The bulk path's request bodies: msgspec (compact, UTF-8) costs a fraction of json.dumps per message, which was
~6% of a sender's CPU at 1,000 msg/s (py-spy)."""


def _aiohttp_error(exc: BaseException) -> WhatsAppError:
    """Connect failures mean the request never left; anything later means it may have been processed."""
    import aiohttp

    never_sent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return WhatsAppError(f"{type(exc).__name__}: {exc}", outcome_unknown=not never_sent)


@dataclass(frozen=True)
class TokenInfo:
    """The parts of `debug_token`'s answer the 05:50 check acts on."""

    is_valid: bool
    expires_at: dt.datetime | None  # None: never expires (Graph says 0)
    token_type: str | None = None
    scopes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, data: dict) -> TokenInfo:
        expires = data.get("expires_at")
        try:
            expires_at = None if not expires else dt.datetime.fromtimestamp(int(expires), dt.UTC)
        except (TypeError, ValueError) as exc:
            raise WhatsAppError(f"debug_token expires_at is not a timestamp: {expires!r}", code=None) from exc
        return cls(bool(data.get("is_valid")), expires_at, data.get("type"),
                   tuple(str(x) for x in data.get("scopes") or ()))

    def days_left(self, now: dt.datetime) -> float | None:
        return None if self.expires_at is None else (self.expires_at - now).total_seconds() / 86400


class WhatsAppClient:
    """Checks and administration: phone-number status, templates, media, health."""

    def __init__(self, settings: WhatsAppSettings, transport: httpx.BaseTransport | None = None):
        self.settings = settings
        # No default Content-Type: httpx sets application/json for json= and multipart/form-data for files=.
        headers = {k: v for k, v in settings.headers.items() if k.lower() != "content-type"}
        self._http = http_clients.client(headers=headers, timeout=settings.timeout, transport=transport)

    def __enter__(self) -> WhatsAppClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, url: str, **kwargs) -> Any:
        try:
            resp = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        if resp.status_code != 200:
            raise _error_from_response(resp)
        try:
            return resp.json()
        except ValueError:
            raise WhatsAppError(f"{method} {httpx.URL(url).path} answered 200 without a JSON body",
                                http_status=200) from None

    def _get(self, url: str, params: dict | None = None) -> dict:
        return _require_object(self._call("GET", url, params=params), f"GET {httpx.URL(url).path}")

    def health(self) -> dict:
        """A cheap authenticated call: the WABA's id and name. Raises WhatsAppError(190) on a bad token."""
        info = self._get(self.settings.url(self.settings.waba_id), {"fields": "id,name"})
        _require_str(info, "id", "WhatsApp Business Account")
        return info

    def debug_token(self) -> TokenInfo:
        """What Graph says of our own access token: valid, and when it expires
        (https://developers.facebook.com/docs/facebook-login/guides/access-tokens/debugging). The token inspects
        itself, as the app's own token may. A system-user token never expires (`expires_at` 0)."""
        body = self._get(self.settings.url("debug_token"), {"input_token": self.settings.access_token})
        data = body.get("data")
        if not isinstance(data, dict):
            raise WhatsAppError("debug_token answered without a data object", code=None)
        return TokenInfo.parse(data)

    def get_phone_number(self, phone_number_id: str) -> PhoneNumber:
        """Quality, status, throughput and the portfolio's messaging limit
        (`whatsapp_business_manager_messaging_limit`; `messaging_limit_tier` is deprecated and never requested)."""
        return PhoneNumber.parse(self._get(self.settings.url(phone_number_id),
                                           {"fields": ",".join(PHONE_NUMBER_FIELDS)}))

    def list_templates(self, page_size: int = 50) -> list[dict]:
        """Every message template of the WABA with TEMPLATE_FIELDS, following `paging.next` to the end.

        `next` is Graph's link to the following page and keeps the query (fields, limit); it is absent on the last
        page (https://developers.facebook.com/docs/graph-api/results). A link to another host is not followed with
        our token: the `after` cursor is sent to our own base URL instead."""
        url = self.settings.url(self.settings.waba_id, "message_templates")
        first_params = {"fields": ",".join(TEMPLATE_FIELDS), "limit": page_size}
        params: dict[str, Any] | None = first_params
        out: list[dict] = []
        seen: set[str] = set()
        for _ in range(10_000):  # hard stop against a paging loop
            page = self._get(url, params)
            data = page.get("data")
            if not isinstance(data, list):
                raise WhatsAppError("template list response has no 'data' array (required field missing)",
                                    http_status=200)
            out.extend(_template_record(item, len(out) + i) for i, item in enumerate(data))
            paging = page.get("paging") if isinstance(page.get("paging"), dict) else {}
            nxt = paging.get("next")
            if not isinstance(nxt, str) or not nxt:
                return out
            if nxt in seen:
                raise WhatsAppError("template paging returned the same next link twice")
            seen.add(nxt)
            if self._same_origin(nxt):
                url, params = nxt, None
            else:
                after = (paging.get("cursors") or {}).get("after") if isinstance(paging.get("cursors"), dict) else None
                if not isinstance(after, str) or not after:
                    raise WhatsAppError("template paging: next link to another host and no after cursor")
                url = self.settings.url(self.settings.waba_id, "message_templates")
                params = {**first_params, "after": after}
        raise WhatsAppError("template paging did not terminate")

    def _same_origin(self, link: str) -> bool:
        a, b = httpx.URL(link), httpx.URL(self.settings.base_url)
        return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)

    def create_template(self, name: str, language: str, category: str, components: list[dict]) -> dict:
        return self._call("POST", self.settings.url(self.settings.waba_id, "message_templates"),
                          json={"name": name, "language": language, "category": category, "components": components})

    # -- media (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media)
    def upload_media(self, phone_number_id: str, content: bytes, mime_type: str, filename: str = "upload") -> str:
        """POST /{phone-number-id}/media (multipart: file, type, messaging_product); returns the media id, usable
        as a template header image for 30 days. Meta accepts JPEG/PNG images up to 5 MB (131053 otherwise)."""
        data = self._call("POST", self.settings.url(phone_number_id, "media"),
                          data={"messaging_product": "whatsapp", "type": mime_type},
                          files={"file": (filename, content, mime_type)})
        return _require_str(_require_object(data, "media upload"), "id", "media upload")

    def get_media(self, media_id: str, phone_number_id: str | None = None) -> MediaInfo:
        """GET /{media-id}: the media's short-lived URL (5 minutes), MIME type, sha256 and size."""
        params = {"phone_number_id": phone_number_id} if phone_number_id else None
        return MediaInfo.parse(self._call("GET", self.settings.url(media_id), params=params))

    def delete_media(self, media_id: str, phone_number_id: str | None = None) -> bool:
        """DELETE /{media-id} -> {"success": true}."""
        params = {"phone_number_id": phone_number_id} if phone_number_id else None
        data = _require_object(self._call("DELETE", self.settings.url(media_id), params=params), "media delete")
        if not isinstance(data.get("success"), bool):
            raise WhatsAppError("media delete response has no 'success' (required field missing)", http_status=200)
        return data["success"]


try:  # The hook needs Airflow; the client above does not.
    from airflow.sdk import BaseHook as _BaseHook
except ImportError:  # pragma: no cover - Airflow is always installed in this project
    _BaseHook = object  # type: ignore[assignment,misc]


class WhatsAppHook(_BaseHook):  # type: ignore[misc,valid-type]
    """Airflow hook over the `whatsapp_cloud` connection."""

    conn_name_attr = "whatsapp_conn_id"
    default_conn_name = config.WHATSAPP_CONN_ID
    conn_type = "http"
    hook_name = "WhatsApp Cloud API"

    def __init__(self, whatsapp_conn_id: str = config.WHATSAPP_CONN_ID, **kwargs):
        super().__init__(**kwargs)
        self.whatsapp_conn_id = whatsapp_conn_id

    def get_settings(self) -> WhatsAppSettings:
        return WhatsAppSettings.from_connection(self.get_connection(self.whatsapp_conn_id))

    def get_conn(self) -> WhatsAppClient:
        return WhatsAppClient(self.get_settings())

    def get_async_client(self) -> AsyncWhatsAppClient:
        return AsyncWhatsAppClient(self.get_settings())

    def test_connection(self) -> tuple[bool, str]:
        try:
            with self.get_conn() as client:
                info = client.health()
            return True, f"WABA {info.get('id')} reachable"
        except WhatsAppError as exc:
            return False, str(exc)
