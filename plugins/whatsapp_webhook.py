"""Airflow plugin: serves the WhatsApp webhook receiver from the api-server at /whatsapp/webhook.

Meta (or the sandbox) calls this URL; the receiver lives in include/whatsapp/webhook_receiver.py. Inside the
api-server it needs no extra service (`make run`, the tests): it shares the api-server's TLS, ports and process
supervision, and reads the app secret and verify token from the `whatsapp_cloud` connection and the database
from `app_db`. At production rates it belongs in its own process behind the same URL
(`include.whatsapp.webhook_receiver:standalone_app`): the api-server's own middlewares (JWT refresh, access log,
gzip, all BaseHTTPMiddleware) cost ~1 ms of CPU per webhook, about ten times the receiver's work
(bench/webhook_receiver.py, README "Where the receiver runs"). Both serve the same app; this route stays as the
fallback and for the dev stack.

Authentication: GET/POST /whatsapp/webhook stay open, because Meta cannot log in to Airflow; the
`X-Hub-Signature-256` signature (POST) and the verify token (GET) are its credentials. Every operational
route (`/whatsapp/webhook/stats`) requires an authenticated Airflow user through the api-server's own
dependency (`airflow.api_fastapi.core_api.security.requires_authenticated`: a JWT as `Authorization:
Bearer`, or the UI's session cookie), so it answers 401 without a token and 403 with an invalid one.

The app is built on first use, by the api-server: every Airflow process imports plugins (a task runner
does, for macros), and only the api-server needs the receiver and Airflow's API security module.
"""
from __future__ import annotations

import functools

from airflow.plugins_manager import AirflowPlugin


def airflow_ops_auth():
    """The FastAPI dependency Airflow's api-server uses for "any logged-in user"."""
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return requires_authenticated()


@functools.cache
def receiver_app():
    from include.whatsapp.webhook_receiver import create_app

    return create_app(ops_auth=airflow_ops_auth())


class WhatsAppWebhookPlugin(AirflowPlugin):
    name = "whatsapp_webhook"

    @property
    def fastapi_apps(self):  # read by the api-server (and `airflow plugins`), never by workers
        return [{"app": receiver_app(), "url_prefix": "/whatsapp", "name": "WhatsApp webhook receiver"}]
