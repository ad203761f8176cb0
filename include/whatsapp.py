"""WhatsApp Cloud API client (httpx; async for bulk sends, sync for checks) and its Airflow hook.

Errors are classified by the Graph error `code`, never by HTTP status alone; the whole table is
ERROR_CLASSES below. Timeouts are explicit, connections pooled, the access token never logged
and phone numbers masked in every log line.

Connection `whatsapp_cloud`: host = Graph base URL, password = access token,
extras = {"waba_id", "app_secret", "api_version", "verify_token"}.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from include import config
from include.phones import mask_phone

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


def classify(code: int | None, http_status: int | None = None) -> ErrorClass:
    """The class of a Graph error: by code first; an unknown code with a 5xx is transient."""
    if code is not None and code in ERROR_CLASSES:
        return ERROR_CLASSES[code]
    if http_status is not None and http_status >= 500:
        return ErrorClass.TRANSIENT
    return ErrorClass.INVALID_REQUEST


class WhatsAppError(Exception):
    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None,
                 details: str = "", fbtrace_id: str | None = None, outcome_unknown: bool = False):
        self.code = code
        self.http_status = http_status
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.outcome_unknown = outcome_unknown
        self.error_class = ErrorClass.TRANSIENT if code is None and http_status is None else classify(code, http_status)
        super().__init__(message)

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
    code = err.get("code")
    details = (err.get("error_data") or {}).get("details", "") if isinstance(err.get("error_data"), dict) else ""
    return WhatsAppError(err.get("message") or f"HTTP {status}", code=code if isinstance(code, int) else None,
                         http_status=status, details=details, fbtrace_id=err.get("fbtrace_id"))


def _transport_error(exc: httpx.HTTPError) -> WhatsAppError:
    # Connect failures mean the request never left; anything later means it may have been processed.
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return WhatsAppError(f"{type(exc).__name__}: {exc}", outcome_unknown=not never_sent)


def _success_payload(status: int, payload: bytes, started: float) -> SendResult:
    try:
        data = json.loads(payload)
        wamid = data["messages"][0]["id"]
    except (KeyError, IndexError, TypeError, ValueError):
        raise WhatsAppError(f"send answered {status} without a message id", http_status=status,
                            outcome_unknown=True) from None
    contacts = data.get("contacts") or [{}]
    return SendResult(wamid, contacts[0].get("wa_id"), int((time.perf_counter() - started) * 1000))


class AsyncWhatsAppClient:
    """Bulk sending. One instance per sender task; share it across that task's coroutines.

    Built on aiohttp: its C-accelerated HTTP parser costs far less CPU per request than httpx, which
    matters when several senders, PostgreSQL and the sandbox share 2 cores (httpx measured ~250
    req/s per process here and also slowed sharply past ~8 connections per client).
    """

    def __init__(self, settings: WhatsAppSettings):
        self.settings = settings
        self._session = None

    async def __aenter__(self) -> AsyncWhatsAppClient:
        self._open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def _open(self):
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                headers=self.settings.headers,
                connector=aiohttp.TCPConnector(limit=self.settings.max_connections, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=None, connect=self.settings.connect_timeout_s,
                                              sock_read=self.settings.read_timeout_s),
                json_serialize=_json_dumps, raise_for_status=False)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_template(self, phone_number_id: str, to: str, template: str, language: str,
                            body_params: list[str] | tuple[str, ...] = (), image_link: str | None = None,
                            image_id: str | None = None, biz_opaque_callback_data: str | None = None) -> SendResult:
        import aiohttp

        body = build_template_message(to, template, language, body_params, image_link, image_id,
                                      biz_opaque_callback_data)
        started = time.perf_counter()
        try:
            async with self._open().post(self.settings.url(phone_number_id, "messages"), json=body) as resp:
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


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _aiohttp_error(exc: BaseException) -> WhatsAppError:
    """Connect failures mean the request never left; anything later means it may have been processed."""
    import aiohttp

    never_sent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return WhatsAppError(f"{type(exc).__name__}: {exc}", outcome_unknown=not never_sent)


class WhatsAppClient:
    """Checks and administration: phone-number status, templates, health."""

    def __init__(self, settings: WhatsAppSettings, transport: httpx.BaseTransport | None = None):
        self.settings = settings
        self._http = httpx.Client(headers=settings.headers, timeout=settings.timeout, transport=transport)

    def __enter__(self) -> WhatsAppClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _get(self, url: str, params: dict | None = None) -> dict:
        try:
            resp = self._http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        if resp.status_code != 200:
            raise _error_from_response(resp)
        return resp.json()

    def health(self) -> dict:
        """A cheap authenticated call: the WABA's id and name. Raises WhatsAppError(190) on a bad token."""
        return self._get(self.settings.url(self.settings.waba_id), {"fields": "id,name"})

    def get_phone_number(self, phone_number_id: str) -> dict:
        return self._get(self.settings.url(phone_number_id), {
            "fields": "id,display_phone_number,quality_rating,throughput,messaging_limit_tier,status,name_status"})

    def list_templates(self, page_size: int = 50) -> list[dict]:
        """Every message template of the WABA, following cursor paging to the end."""
        out: list[dict] = []
        params: dict[str, Any] | None = {"limit": page_size}
        url = self.settings.url(self.settings.waba_id, "message_templates")
        for _ in range(10_000):  # hard stop against a paging loop
            page = self._get(url, params)
            out.extend(page.get("data") or [])
            paging = page.get("paging") or {}
            if not paging.get("next"):
                return out
            after = (paging.get("cursors") or {}).get("after")
            if not after:
                return out
            params = {"limit": page_size, "after": after}
        raise WhatsAppError("template paging did not terminate")

    def create_template(self, name: str, language: str, category: str, components: list[dict]) -> dict:
        try:
            resp = self._http.post(self.settings.url(self.settings.waba_id, "message_templates"),
                                   json={"name": name, "language": language, "category": category,
                                         "components": components})
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        if resp.status_code != 200:
            raise _error_from_response(resp)
        return resp.json()


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
