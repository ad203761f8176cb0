"""PagerDuty's acknowledge lands on the incident timeline: the receiver of PagerDuty's V3 webhooks
(`incident.acknowledged`), served by the api-server at /pagerduty/webhook (plugins/pagerduty_webhook.py).

A page's PagerDuty dedup key is `incident-<id>-<role>` (include/incidents/paging.py), so the acknowledged
PagerDuty incident names our incident and the role that was paged. The request is authenticated the way
PagerDuty signs it (`X-PagerDuty-Signature: v1=<hex HMAC-SHA256>`, several during a secret rotation) with the
secrets in the `pagerduty_events` connection's `webhook_secrets` extra. Other event types answer 204 and change
nothing; an unknown incident answers 202 (PagerDuty's own incidents, not ours); a bad signature 401.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
OUR_KEY = re.compile(r"^incident-(\d+)-([a-z_]+)$")
MAX_BODY = 1024 * 1024


def webhook_secrets(conn_id: str = "pagerduty_events") -> list[str]:
    from airflow.sdk import BaseHook

    secrets = BaseHook.get_connection(conn_id).extra_dejson.get("webhook_secrets") or []
    return [secrets] if isinstance(secrets, str) else [str(s) for s in secrets]


def create_app(engine_factory: Callable[[], Engine], secrets_factory: Callable[[], list[str]] = webhook_secrets,
               clock=None) -> FastAPI:
    import datetime as dt

    from include.incidents import records
    from include.paging.pagerduty import parse_acknowledgement, verify_pagerduty_signature

    app = FastAPI(title="PagerDuty webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/webhook")
    async def webhook(request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return Response(status_code=413)
        if not verify_pagerduty_signature(raw, request.headers.get("x-pagerduty-signature", ""), secrets_factory()):
            return JSONResponse({"error": "signature mismatch"}, status_code=401)
        try:
            ack = parse_acknowledgement(raw)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if ack is None:
            return Response(status_code=204)
        match = OUR_KEY.match(str(ack.get("incident_key") or ""))
        if not match:
            log.info("PagerDuty acknowledged %s, which is not one of our pages", ack.get("incident_key"))
            return JSONResponse({"status": "ignored"}, status_code=202)
        incident_id, role = int(match.group(1)), match.group(2)
        who = ack.get("acknowledged_by") or "someone in PagerDuty"
        first = records.acknowledge(engine_factory(), incident_id, f"{who} ({role})", "pagerduty",
                                    ack.get("acknowledged_at") or (clock or dt.datetime.now)(dt.UTC))
        return JSONResponse({"status": "acknowledged" if first else "already acknowledged",
                             "incident_id": incident_id})

    return app
