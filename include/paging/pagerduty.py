"""Paging through PagerDuty's Events API v2, and reading its V3 webhooks.

`send_event` triggers, acknowledges or resolves the alert of one dedup key on the service behind a routing key.
The `pagerduty_events` Airflow connection (type `pagerduty_events`, from apache-airflow-providers-pagerduty) holds:
  password  the default routing key (the provider's "Pagerduty Integration key"), used when the caller gives none
  host      where the Events API is: empty in production (https://events.pagerduty.com), the sandbox's URL in tests
            and `make run`. Plain http is refused except to a loopback address: the routing key is a secret.

Why not `PagerdutyEventsHook.send_event`: the provider (5.3.1) builds `pagerduty.EventsApiV2Client(key)` with no
base URL, so the connection's host (a hidden field for this connection type) is never read, and the `pagerduty`
library (7.2) refuses any base URL that is not https:// (`UrlError`). Its async hook hard-codes
https://events.pagerduty.com as well. So the call itself is made here with httpx, the event body is built by the
provider's `prepare_event_data`, and the routing key comes from the provider's hook and connection.

Delivery rules (https://developer.pagerduty.com/docs/events-api-v2/overview/, "Response Codes & Retry Logic"):
202 accepted; 400 never retried (PagerDutyEventRejected names the event and PagerDuty's errors); 429, 5xx and network
errors retried with backoff (RETRY_DELAYS_S), then PagerDutyUnavailable. A retry is safe because the dedup key is
always ours: PagerDuty applies a trigger whose dedup_key matches an open alert to that alert, so a trigger sent
twice is still one incident ("Alert De-Duplication" in
https://developer.pagerduty.com/docs/events-api-v2/trigger-events/).

Webhooks (for the incident engineer to mount): `verify_pagerduty_signature` checks X-PagerDuty-Signature
(https://developer.pagerduty.com/docs/verifying-signatures) and `parse_acknowledgement` reads an
`incident.acknowledged` V3 webhook (https://developer.pagerduty.com/docs/webhooks-overview). Both are pure.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from include.core import http_clients

log = logging.getLogger(__name__)

DEFAULT_EVENTS_URL = "https://events.pagerduty.com"
ENQUEUE_PATH = "/v2/enqueue"
ACTIONS = ("trigger", "acknowledge", "resolve")
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
# Our alert severities (include/core/alerting.py Severity) -> PagerDuty's payload.severity.
SEVERITY_MAP = {"P0": "critical", "P1": "error", "P2": "warning", "info": "info"}
# Waits before the 2nd, 3rd and 4th attempt. PagerDuty suggests minutes for a 429; a page cannot wait that long,
# and the dedup key keeps every retry on the same alert.
RETRY_DELAYS_S: tuple[float, ...] = (1.0, 3.0, 9.0)
TIMEOUT_S = 10.0


class PagingError(Exception):
    """A page could not be delivered to PagerDuty."""


class PagerDutyEventRejected(PagingError):
    """PagerDuty answered 400 (or another 4xx): the event is wrong and a retry would not help."""

    def __init__(self, message: str, status: int, errors: list[str]):
        super().__init__(message)
        self.status = status
        self.errors = errors


class PagerDutyUnavailable(PagingError):
    """429, 5xx or network errors on every attempt."""


def pagerduty_severity(severity: str) -> str:
    """PagerDuty's payload.severity for one of our severities: P0 critical, P1 error, P2 warning, info info."""
    try:
        return SEVERITY_MAP[severity]
    except KeyError:
        raise ValueError(f"unknown severity {severity!r}; expected one of {', '.join(SEVERITY_MAP)}") from None


def _events_url(host: str | None) -> str:
    """The enqueue URL from the connection's host: empty -> PagerDuty; "host[:port]" -> https; a full URL as given,
    plain http only to a loopback address (the sandbox)."""
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_EVENTS_URL + ENQUEUE_PATH
    if "://" not in host:
        host = "https://" + host
    parts = urlsplit(host)
    if parts.scheme == "http":
        try:
            loopback = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname or "").is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise PagingError(f"refusing to send a routing key over plain http to {parts.hostname}; use https")
    elif parts.scheme != "https":
        raise PagingError(f"unsupported scheme in the PagerDuty events host: {host}")
    return host + ENQUEUE_PATH


def _routing_key_and_url(routing_key: str, conn_id: str) -> tuple[str, str]:
    from airflow.providers.pagerduty.hooks.pagerduty_events import PagerdutyEventsHook

    # The provider's hook reads the connection: its password is the integration (routing) key, and a key given
    # explicitly takes precedence (it raises when there is neither).
    hook = PagerdutyEventsHook(integration_key=routing_key or None, pagerduty_events_conn_id=conn_id)
    conn = hook.get_connection(conn_id)
    return hook.integration_key, _events_url(conn.host)


def build_event(action: str, routing_key: str, dedup_key: str, summary: str | None = None,
                severity: str = "critical", source: str = "advisor-content-delivery",
                custom_details: dict | None = None, links: list | None = None) -> dict:
    """The Events API v2 body. A trigger carries the payload (built by the provider's `prepare_event_data`);
    acknowledge and resolve carry only routing_key, dedup_key and event_action, as PagerDuty's examples do."""
    from airflow.providers.pagerduty.hooks.pagerduty_events import prepare_event_data

    if action not in ACTIONS:
        raise ValueError(f"event action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if not dedup_key:
        raise ValueError("a dedup_key is required: it is what makes a retried trigger the same incident")
    if action != "trigger":
        return {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key}
    if not summary:
        raise ValueError("a trigger needs a summary")
    pd_severity = severity if severity in PAGERDUTY_SEVERITIES else pagerduty_severity(severity)
    data = prepare_event_data(summary=summary, severity=pd_severity, source=source, custom_details=custom_details,
                              action=action, dedup_key=dedup_key, links=links, action_key_name="event_action")
    return {"routing_key": routing_key, **data}


def send_event(action: str, routing_key: str, dedup_key: str, summary: str | None = None,
               severity: str = "critical", source: str = "advisor-content-delivery",
               custom_details: dict | None = None, links: list | None = None,
               conn_id: str = "pagerduty_events") -> dict:
    """Send one alert event (trigger / acknowledge / resolve) and return PagerDuty's 202 body
    ({"status": "success", "message": "Event processed", "dedup_key": ...}).

    `severity` is PagerDuty's (critical, error, warning, info) or ours (P0, P1, P2, info). An empty `routing_key`
    uses the connection's. Raises PagerDutyEventRejected (400 / other 4xx, not retried) or PagerDutyUnavailable
    (429 / 5xx / network errors on every attempt)."""
    key, url = _routing_key_and_url(routing_key, conn_id)
    event = build_event(action, key, dedup_key, summary, severity, source, custom_details, links)
    what = f"PagerDuty {action} event for dedup_key {dedup_key!r} (routing key ...{key[-4:]})"
    last = ""
    with http_clients.client(timeout=TIMEOUT_S) as client:
        for attempt in range(1, len(RETRY_DELAYS_S) + 2):
            try:
                resp = client.post(url, json=event, headers={"Accept": "application/json"})
            except httpx.TransportError as exc:
                last = f"network error {type(exc).__name__}: {exc}"
            else:
                if 200 <= resp.status_code < 300:
                    body = _json_or_empty(resp)
                    log.info("%s accepted (attempt %d): %s", what, attempt, body.get("message", resp.status_code))
                    return body
                if resp.status_code != 429 and resp.status_code < 500:
                    body = _json_or_empty(resp)
                    errors = [str(e) for e in body.get("errors") or []]
                    raise PagerDutyEventRejected(
                        f"{what} refused with HTTP {resp.status_code}: {body.get('message') or resp.text[:200]}"
                        + (f" ({'; '.join(errors)})" if errors else ""), resp.status_code, errors)
                last = f"HTTP {resp.status_code}"
            if attempt <= len(RETRY_DELAYS_S):
                delay = RETRY_DELAYS_S[attempt - 1]
                log.warning("%s: %s on attempt %d; retrying in %.1f s", what, last, attempt, delay)
                time.sleep(delay)
    raise PagerDutyUnavailable(f"{what} not accepted after {len(RETRY_DELAYS_S) + 1} attempts: {last}")


def _json_or_empty(resp: httpx.Response) -> dict:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# ------------------------------------------------------------------------------------------- V3 webhooks
def verify_pagerduty_signature(body: bytes, header: str, secrets: list[str]) -> bool:
    """True when one of the `v1=` signatures in X-PagerDuty-Signature is the hex HMAC-SHA256 of the raw body under
    one of `secrets` (several of each during a secret rotation). Constant-time comparisons."""
    if not header:
        return False
    offered = [part.strip()[3:] for part in header.split(",") if part.strip().startswith("v1=")]
    if not offered:
        return False
    matched = False
    for secret in secrets:
        if not secret:
            continue
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        for signature in offered:
            matched |= hmac.compare_digest(expected, signature.lower())
    return matched


def parse_acknowledgement(body: bytes | str | dict) -> dict | None:
    """An `incident.acknowledged` V3 webhook as {incident_key, incident_id, incident_number, title, status,
    acknowledged_by, acknowledged_by_id, acknowledged_at (aware datetime), event_id, html_url}; None for any other
    event type. `incident_key` is the dedup_key of the Events API alert that opened the incident. Raises ValueError
    when the body is not a V3 webhook."""
    try:
        payload: Any = json.loads(body) if isinstance(body, bytes | str) else body
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a PagerDuty webhook: {exc}") from None
    event = payload.get("event") if isinstance(payload, dict) else None
    if not isinstance(event, dict) or not isinstance(event.get("event_type"), str):
        raise ValueError("not a PagerDuty V3 webhook: no event.event_type")
    if event["event_type"] != "incident.acknowledged":
        return None
    data, agent = event.get("data"), event.get("agent") or {}
    if not isinstance(data, dict) or not isinstance(agent, dict):
        raise ValueError("incident.acknowledged without an incident in event.data")
    occurred = event.get("occurred_at")
    try:
        acknowledged_at = datetime.fromisoformat(str(occurred).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"incident.acknowledged with a bad occurred_at: {occurred!r}") from None
    return {"incident_key": data.get("incident_key"), "incident_id": data.get("id"),
            "incident_number": data.get("number"), "title": data.get("title"), "status": data.get("status"),
            "acknowledged_by": agent.get("summary"), "acknowledged_by_id": agent.get("id"),
            "acknowledged_at": acknowledged_at, "event_id": event.get("id"), "html_url": data.get("html_url")}
