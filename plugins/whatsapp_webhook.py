"""Airflow plugin: serves the WhatsApp webhook receiver from the api-server at /whatsapp/webhook.

Meta (or the sandbox) calls this URL; the receiver lives in include/webhook_receiver.py. Running it
inside the api-server means no extra service to deploy, monitor or secure: it shares the api-server's
TLS, ports and process supervision, and reads the app secret and verify token from the
`whatsapp_cloud` connection and the database from `app_db`.
"""
from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.webhook_receiver import create_app


class WhatsAppWebhookPlugin(AirflowPlugin):
    name = "whatsapp_webhook"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/whatsapp", "name": "WhatsApp webhook receiver"}]
