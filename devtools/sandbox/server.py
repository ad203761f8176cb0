"""Run the sandbox: `python -m devtools.sandbox.server [--host 127.0.0.1] [--port 8090]`.

Settings come from the environment (SANDBOX_ACCESS_TOKEN, SANDBOX_APP_SECRET, SANDBOX_WABA_ID,
SANDBOX_CALLBACK_URL, SANDBOX_LIMITS=off, SANDBOX_WEBHOOK_BATCH_MAX) and can be changed at run time through
/_sandbox/config. The SMTP sink
(smtp_sink.py) listens on --host at --smtp-port (SANDBOX_SMTP_PORT, default 8025; 0 = any free port).
"""
from __future__ import annotations

import argparse
import os

import uvicorn

from devtools.sandbox.app import create_app
from devtools.sandbox.state import Settings, WebhookSettings


def settings_from_env() -> tuple[Settings, WebhookSettings]:
    s = Settings()
    s.access_token = os.environ.get("SANDBOX_ACCESS_TOKEN") or s.access_token
    s.app_secret = os.environ.get("SANDBOX_APP_SECRET") or s.app_secret
    s.waba_id = os.environ.get("SANDBOX_WABA_ID") or s.waba_id
    s.limits_enabled = os.environ.get("SANDBOX_LIMITS", "on").lower() not in ("off", "0", "false")
    w = WebhookSettings(url=os.environ.get("SANDBOX_CALLBACK_URL", ""),
                        batch_max=int(os.environ.get("SANDBOX_WEBHOOK_BATCH_MAX", "1")))
    return s, w


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", "8090")))
    parser.add_argument("--smtp-port", type=int, default=int(os.environ.get("SANDBOX_SMTP_PORT", "8025")))
    args = parser.parse_args(argv)
    settings, webhooks = settings_from_env()
    print(f"WhatsApp/Slack sandbox on http://{args.host}:{args.port} (alerts: /slack), "
          f"SMTP sink on {args.host}:{args.smtp_port} (/_sandbox/mail)", flush=True)
    uvicorn.run(create_app(settings, webhooks, smtp_port=args.smtp_port, smtp_host=args.host), host=args.host,
                port=args.port, log_level="warning", loop="uvloop", http="httptools", access_log=False,
                timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
