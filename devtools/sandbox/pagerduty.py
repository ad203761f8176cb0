"""The sandbox's PagerDuty: the Events API v2 (`POST /v2/enqueue`), the incidents it opens, and the V3 webhook
`incident.acknowledged` that PagerDuty sends when a person acknowledges one.

Transport-free like state.py: app.py turns requests into calls here. Shapes and rules from PagerDuty's documentation:
  * Send an Alert Event (fields, limits, de-duplication, event actions):
    https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
    (source: https://github.com/PagerDuty/developer-docs/blob/main/docs/events-API-v2/02-Trigger-Events.md)
  * Response codes and retry logic (202 / 400 / 429 / 5xx): https://developer.pagerduty.com/docs/events-api-v2/overview/
  * Response bodies (202 "Event processed", 400 "invalid event" with `errors`):
    https://raw.githubusercontent.com/PagerDuty/api-schema/main/reference/events-v2/openapiv3.json
  * V3 webhook payload (event envelope, `incident` data type): https://developer.pagerduty.com/docs/webhooks-overview
  * Signatures (`X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>`, one per secret, comma separated):
    https://developer.pagerduty.com/docs/verifying-signatures
  * Delivery headers and retries (X-Webhook-Id, 5 attempts on 5xx / 429 / network errors):
    https://github.com/PagerDuty/developer-docs/blob/main/docs/webhooks/02-Behavior.md

PagerDuty documents the 400 body's shape with one example error ("Length of 'routing_key' is incorrect (should be 32
characters)"); the other error texts are the sandbox's, in the same style.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
ROUTING_KEY_LENGTH = 32
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
WEBHOOK_MAX_ATTEMPTS = 5            # "retried up to 4 times (total of 5 attempts)"
WEBHOOK_USER_AGENT = "PagerDuty-Webhook/V3.0"
SUBSCRIPTION_ID = "PSANDB0"         # X-Webhook-Subscription: the (one) sandbox webhook subscription
ACCOUNT_URL = "https://sandbox.pagerduty.com"
API_URL = "https://api.pagerduty.com"
_STR_FIELDS = ("source", "component", "group", "class")


def _iso(ts: float, timespec: str = "milliseconds") -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def _pd_id(seq: int, prefix: str = "Q") -> str:
    """PagerDuty-style object id (upper-case letters and digits, 7 characters)."""
    return f"{prefix}{seq:06d}"


def sign(body: bytes, secrets_: list[str]) -> str:
    """X-PagerDuty-Signature: `v1=<hex HMAC-SHA256 of the body>` for each signing secret, comma separated."""
    return ",".join("v1=" + hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in secrets_ if s)


def validate(event: Any) -> list[str]:
    """The errors PagerDuty would list for this event (empty when it is valid)."""
    if not isinstance(event, dict):
        return ["Event object is not a JSON object"]
    errors: list[str] = []
    routing_key = event.get("routing_key")
    if not isinstance(routing_key, str) or not routing_key:
        errors.append("'routing_key' is missing or blank")
    elif len(routing_key) != ROUTING_KEY_LENGTH:
        errors.append(f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)")
    action = event.get("event_action")
    if not isinstance(action, str) or not action:
        errors.append("'event_action' is missing or blank")
    elif action not in ACTIONS:
        errors.append(f"'event_action' is invalid (must be one of: {', '.join(ACTIONS)})")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and not isinstance(dedup_key, str):
        errors.append("'dedup_key' must be a string")
    elif isinstance(dedup_key, str) and len(dedup_key) > DEDUP_KEY_MAX:
        errors.append(f"Length of 'dedup_key' is too long (max {DEDUP_KEY_MAX} characters)")
    elif action in ("acknowledge", "resolve") and not dedup_key:
        errors.append(f"'dedup_key' is missing or blank (required when 'event_action' is {action})")
    if action == "trigger":
        errors += _payload_errors(event.get("payload"))
    for name, required in (("links", "href"), ("images", "src")):
        errors += _context_errors(event, name, required)
    for name in ("client", "client_url"):
        if name in event and not isinstance(event[name], str):
            errors.append(f"'{name}' must be a string")
    return errors


def _payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object (required when 'event_action' is trigger)"]
    errors = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > SUMMARY_MAX:
        errors.append(f"Length of 'payload.summary' is too long (max {SUMMARY_MAX} characters)")
    source = payload.get("source")
    if not isinstance(source, str) or not source.strip():
        errors.append("'payload.source' is missing or blank")
    severity = payload.get("severity")
    if not isinstance(severity, str) or not severity:
        errors.append("'payload.severity' is missing or blank")
    elif severity not in SEVERITIES:
        errors.append(f"'payload.severity' is invalid (must be one of: {', '.join(SEVERITIES)})")
    for name in _STR_FIELDS[1:]:
        if name in payload and not isinstance(payload[name], str):
            errors.append(f"'payload.{name}' must be a string")
    if "timestamp" in payload:
        ts = payload["timestamp"]
        try:
            if not isinstance(ts, str):
                raise ValueError(ts)
            datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            errors.append("'payload.timestamp' is not a valid ISO 8601 timestamp")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict | str):
        errors.append("'payload.custom_details' must be an object")
    return errors


def _context_errors(event: dict, name: str, required: str) -> list[str]:
    if name not in event:
        return []
    items = event[name]
    if not isinstance(items, list):
        return [f"'{name}' must be an array of objects"]
    return [f"'{name}[{i}].{required}' is missing or blank" for i, item in enumerate(items)
            if not isinstance(item, dict) or not isinstance(item.get(required), str) or not item[required]]


@dataclass
class Incident:
    """An incident the Events API opened; PagerDuty sets its `incident_key` to the alert's dedup_key."""
    id: str
    number: int
    routing_key: str
    dedup_key: str
    title: str
    severity: str
    source: str
    created_at: float
    status: str = "triggered"              # triggered | acknowledged | resolved
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    resolved_at: float | None = None
    events: list[dict] = field(default_factory=list)   # {seq, event_action, received_at}

    @property
    def open(self) -> bool:
        return self.status != "resolved"

    def public(self) -> dict:
        return {"id": self.id, "number": self.number, "routing_key": self.routing_key, "dedup_key": self.dedup_key,
                "status": self.status, "title": self.title, "severity": self.severity, "source": self.source,
                "created_at": _iso(self.created_at),
                "acknowledged_at": _iso(self.acknowledged_at) if self.acknowledged_at else None,
                "acknowledged_by": self.acknowledged_by,
                "resolved_at": _iso(self.resolved_at) if self.resolved_at else None,
                "events": list(self.events)}


class AdminError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class PagerDutyState:
    """Everything the sandbox's PagerDuty remembers; Sandbox.reset() makes a new one."""

    def __init__(self) -> None:
        self.events: list[dict] = []               # every request to /v2/enqueue, in order, with its outcome
        self.incidents: list[Incident] = []        # every incident ever opened, in order
        self._open: dict[tuple[str, str], Incident] = {}   # (routing_key, dedup_key) -> its open incident
        self._seq = itertools.count(1)
        self.webhooks: list[dict] = []             # V3 webhooks sent (or tried) by acknowledge()

    # -- Events API v2 ----------------------------------------------------------------------------
    def enqueue(self, event: Any, throttled: bool = False, server_error: bool = False) -> tuple[int, dict | None]:
        """(HTTP status, body) for one POST /v2/enqueue; the event is recorded whatever the outcome."""
        now = time.time()
        record: dict[str, Any] = {"seq": len(self.events) + 1, "received_at": _iso(now), "body": event}
        self.events.append(record)
        if throttled:
            record.update(status=429, outcome="throttled")
            return 429, None          # documented with no body: "Too many API calls at a time"
        if server_error:
            record.update(status=500, outcome="server_error")
            return 500, None
        errors = validate(event)
        if errors:
            record.update(status=400, outcome="invalid", errors=errors)
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        action, routing_key = event["event_action"], event["routing_key"]
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex   # a trigger without one: a new unique key
        key = (routing_key, dedup_key)
        incident = self._open.get(key)
        ref = {"seq": record["seq"], "event_action": action, "received_at": record["received_at"]}
        if action == "trigger":
            if incident is None:
                n = next(self._seq)
                payload = event["payload"]
                incident = Incident(_pd_id(n), n, routing_key, dedup_key, payload["summary"], payload["severity"],
                                    payload["source"], now)
                self.incidents.append(incident)
                self._open[key] = incident
                outcome = "incident_opened"
            else:
                outcome = "deduplicated"      # a trigger log entry on the open alert, no new incident
        elif incident is None:
            outcome = "dropped"               # acknowledge / resolve with no open alert for the key
        elif action == "acknowledge":
            if incident.status == "triggered":
                incident.status, incident.acknowledged_at = "acknowledged", now
                incident.acknowledged_by = "Events API"
            outcome = "acknowledged"
        else:
            incident.status, incident.resolved_at = "resolved", now
            del self._open[key]               # a later trigger with this key opens a new incident
            outcome = "resolved"
        if incident is not None:
            incident.events.append(ref)
            record["incident_id"] = incident.id
        record.update(status=202, outcome=outcome, dedup_key=dedup_key)
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}

    # -- a person acknowledges in PagerDuty -----------------------------------------------------------
    def find_open(self, dedup_key: str, routing_key: str | None = None) -> Incident:
        matches = [i for (rk, dk), i in self._open.items() if dk == dedup_key and routing_key in (None, rk)]
        if not matches:
            raise AdminError(404, f"no open incident with dedup_key {dedup_key!r}")
        if len(matches) > 1:
            raise AdminError(400, f"several open incidents have dedup_key {dedup_key!r}; give routing_key")
        return matches[0]

    def acknowledge_by_user(self, dedup_key: str, routing_key: str | None, user: str, user_id: str) -> Incident:
        incident = self.find_open(dedup_key, routing_key)
        incident.status, incident.acknowledged_at, incident.acknowledged_by = "acknowledged", time.time(), user
        incident.events.append({"seq": None, "event_action": "acknowledge", "received_at": _iso(time.time()),
                                "by": user, "user_id": user_id})
        return incident

    def webhook_payload(self, incident: Incident, event_type: str, user: str, user_id: str) -> dict:
        """A V3 webhook: one `event` envelope whose `data` is the `incident` data type."""
        def ref(kind: str, oid: str, summary: str, path: str) -> dict:
            return {"html_url": f"{ACCOUNT_URL}/{path}/{oid}", "id": oid, "self": f"{API_URL}/{path}/{oid}",
                    "summary": summary, "type": f"{kind}_reference"}

        service_id = "PS" + hashlib.sha1(incident.routing_key.encode()).hexdigest()[:5].upper()
        return {"event": {
            "id": str(uuid.uuid4()), "event_type": event_type, "resource_type": "incident",
            "occurred_at": _iso(incident.acknowledged_at or time.time()),
            "agent": ref("user", user_id, user, "users"),
            "client": {"name": "PagerDuty"},
            "data": {
                "id": incident.id, "type": "incident", "self": f"{API_URL}/incidents/{incident.id}",
                "html_url": f"{ACCOUNT_URL}/incidents/{incident.id}", "number": incident.number,
                "status": incident.status, "incident_key": incident.dedup_key,
                "created_at": _iso(incident.created_at, "seconds"), "title": incident.title,
                "service": ref("service", service_id, "Advisor content delivery", "services"),
                "assignees": [ref("user", user_id, user, "users")],
                "escalation_policy": ref("escalation_policy", "PESCAL1", "Advisor content delivery on-call",
                                         "escalation_policies"),
                "teams": [ref("team", "PTEAM01", "Delivery operations", "teams")],
                "priority": {"html_url": f"{ACCOUNT_URL}/account/incident_priorities", "id": "PPRIO01",
                             "self": f"{API_URL}/priorities/PPRIO01",
                             "summary": {"critical": "P1", "error": "P2"}.get(incident.severity, "P3"),
                             "type": "priority_reference"},
                "urgency": "high" if incident.severity in ("critical", "error") else "low",
                "conference_bridge": {"conference_number": "", "conference_url": ""},
                "resolve_reason": None,
            }}}


# ---------------------------------------------------------------------------------------------------- HTTP
async def deliver_webhook(url: str, payload: dict, secrets_: list[str], retry_base_s: float = 0.2) -> dict:
    """POST one V3 webhook as PagerDuty does: raw JSON body, X-PagerDuty-Signature over it, X-Webhook-Id (the same
    on every attempt), X-Webhook-Subscription; retried on 5xx, 429 and network errors up to 5 attempts, any other
    4xx drops it. Returns {url, webhook_id, attempts, status, delivered}."""
    import asyncio

    import httpx

    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    webhook_id = str(uuid.uuid4())
    headers = {"Content-Type": "application/json", "User-Agent": WEBHOOK_USER_AGENT,
               "X-PagerDuty-Signature": sign(body, secrets_), "X-Webhook-Id": webhook_id,
               "X-Webhook-Subscription": SUBSCRIPTION_ID}
    status: int | None = None
    attempt = 0
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=2.0)) as client:
        for attempt in range(1, WEBHOOK_MAX_ATTEMPTS + 1):
            try:
                status = (await client.post(url, content=body, headers=headers)).status_code
            except httpx.HTTPError:
                status = None
            if status is not None and (200 <= status < 300 or (400 <= status < 500 and status != 429)):
                break
            if attempt < WEBHOOK_MAX_ATTEMPTS:
                await asyncio.sleep(retry_base_s * 2 ** (attempt - 1))
    return {"url": url, "webhook_id": webhook_id, "attempts": attempt, "status": status,
            "delivered": status is not None and 200 <= status < 300}


def routes(sb) -> list:
    """Starlette routes of the sandbox's PagerDuty; `sb` is the Sandbox (state.py): its `pagerduty` state, the
    `pagerduty_*` settings (webhook URL and signing secrets) and faults (answer the next N events with 429 / 500)."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def _json(data, status: int = 200) -> Response:
        return Response(json.dumps(data), status_code=status, media_type="application/json")

    async def enqueue(request: Request) -> Response:
        raw = await request.body()
        try:
            event = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            event = raw.decode("utf-8", "replace")
        faults = sb.faults
        throttled = faults.pagerduty_429_next > 0
        server_error = not throttled and faults.pagerduty_5xx_next > 0
        if throttled:
            faults.pagerduty_429_next -= 1
        elif server_error:
            faults.pagerduty_5xx_next -= 1
        status, body = sb.pagerduty.enqueue(event, throttled=throttled, server_error=server_error)
        if status == 400 and isinstance(event, str):   # not JSON at all
            body = {"status": "invalid event", "message": "Event object is invalid",
                    "errors": ["Event object is not valid JSON"]}
            sb.pagerduty.events[-1]["errors"] = body["errors"]
        return Response(b"", status_code=status) if body is None else _json(body, status)

    async def admin_events(request: Request) -> Response:
        return _json({"events": sb.pagerduty.events})

    async def admin_incidents(request: Request) -> Response:
        return _json({"incidents": [i.public() for i in sb.pagerduty.incidents]})

    async def admin_acknowledge(request: Request) -> Response:
        """A person acknowledges the open incident of `dedup_key` (and `routing_key` when several match) in
        PagerDuty: it becomes acknowledged and, when `pagerduty_webhook_url` is configured, a signed V3
        `incident.acknowledged` webhook is posted there. Body: {dedup_key, routing_key?, user?, user_id?}."""
        raw = await request.body()
        try:
            data = json.loads(raw) if raw else {}
        except json.JSONDecodeError as exc:
            return _json({"error": f"malformed JSON: {exc}"}, 400)
        if not isinstance(data, dict) or not isinstance(data.get("dedup_key"), str) or not data["dedup_key"]:
            return _json({"error": "dedup_key is required"}, 400)
        user = str(data.get("user") or "Sandbox On-call")
        user_id = str(data.get("user_id") or "PSBXUSR")
        try:
            incident = sb.pagerduty.acknowledge_by_user(data["dedup_key"], data.get("routing_key"), user, user_id)
        except AdminError as err:
            return _json({"error": str(err)}, err.status)
        result: dict[str, Any] = {"incident": incident.public(), "webhook": None}
        url = sb.settings.pagerduty_webhook_url
        if url:
            payload = sb.pagerduty.webhook_payload(incident, "incident.acknowledged", user, user_id)
            delivery = await deliver_webhook(url, payload, list(sb.settings.pagerduty_webhook_secrets))
            sb.pagerduty.webhooks.append({**delivery, "payload": payload})
            result["webhook"] = delivery
        return _json(result)

    return [
        Route("/v2/enqueue", enqueue, methods=["POST"]),
        Route("/_sandbox/pagerduty/events", admin_events),
        Route("/_sandbox/pagerduty/incidents", admin_incidents),
        Route("/_sandbox/pagerduty/acknowledge", admin_acknowledge, methods=["POST"]),
    ]
