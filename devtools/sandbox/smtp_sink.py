"""The sandbox's SMTP sink: a real SMTP server (aiosmtpd) on a loopback port that keeps every message it receives,
for the advisor delay notices (include/advisor_notices/email.py sends through Airflow's SmtpHook to it).

It runs on the sandbox's own event loop, started by the app's lifespan when the sandbox is given an SMTP port
(`--smtp-port` / SANDBOX_SMTP_PORT). Nothing is relayed anywhere. Tests read what arrived over HTTP:

    GET    /_sandbox/mail              {"port": 8025, "messages": [...]}  (?to=addr filters by recipient)
    DELETE /_sandbox/mail              forget every message (so does POST /_sandbox/reset)
    POST   /_sandbox/mail/faults       {"fail_next": N}: answer the next N messages' DATA with 451 (temporary failure)

Protocol behaviour is plain SMTP as RFC 5321 describes it (EHLO, MAIL FROM, RCPT TO, DATA, QUIT; 250 on success,
451 = "requested action aborted: local error in processing", a transient failure the client may retry):
https://www.rfc-editor.org/rfc/rfc5321 — aiosmtpd implements the server side (https://aiosmtpd.aio-libs.org/).
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import time
from typing import Any


class MailSink:
    """aiosmtpd handler + store. `start(host, port)` binds the SMTP server on the running loop."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail_next = 0
        self.port: int | None = None
        self._server: asyncio.base_events.Server | None = None

    # -- aiosmtpd handler hooks
    async def handle_DATA(self, server, session, envelope) -> str:
        if self.fail_next > 0:
            self.fail_next -= 1
            return "451 4.3.0 sandbox fault: temporary failure, try again later"
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw if isinstance(raw, bytes) else raw.encode(), policy=email.policy.default)
        body_part = msg.get_body(preferencelist=("html", "plain"))
        self.messages.append({
            "received_at": time.time(),
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "from": str(msg.get("From", "")),
            "to": str(msg.get("To", "")),
            "subject": str(msg.get("Subject", "")),
            "message_id": str(msg.get("Message-ID", "")),
            "date": str(msg.get("Date", "")),
            "content_type": body_part.get_content_type() if body_part is not None else None,
            "body": body_part.get_content() if body_part is not None else "",
        })
        return "250 2.0.0 Message accepted for delivery"

    # -- lifecycle
    async def start(self, host: str, port: int) -> None:
        from aiosmtpd.smtp import SMTP

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="sandbox.smtp.local", loop=loop), host=host, port=port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def clear(self) -> None:
        self.messages.clear()
        self.fail_next = 0


def routes(sink: MailSink) -> list:
    """Starlette routes of the sink's admin API (see the module doc)."""
    import json

    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def _json(data, status: int = 200) -> Response:
        return Response(json.dumps(data), status_code=status, media_type="application/json")

    async def mail(request: Request) -> Response:
        if request.method == "DELETE":
            sink.clear()
            return _json({"status": "cleared"})
        to = request.query_params.get("to")
        msgs = [m for m in sink.messages if not to or to in m["rcpt_tos"]]
        return _json({"port": sink.port, "messages": msgs})

    async def faults(request: Request) -> Response:
        try:
            data = json.loads(await request.body() or b"{}")
            unknown = sorted(set(data) - {"fail_next"})
            if unknown:
                raise ValueError(f"unknown mail fault(s): {', '.join(unknown)}")
            sink.fail_next = int(data.get("fail_next", 0))
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"fail_next": sink.fail_next})

    return [Route("/_sandbox/mail", mail, methods=["GET", "DELETE"]),
            Route("/_sandbox/mail/faults", faults, methods=["POST"])]
