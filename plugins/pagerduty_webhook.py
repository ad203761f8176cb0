"""Airflow plugin: PagerDuty's V3 webhooks at /pagerduty/webhook, served by the api-server, so an acknowledgement
made in PagerDuty stops our escalation and lands on the incident timeline (include/incidents/pagerduty_acks.py).

Open to PagerDuty (it cannot log in to Airflow): the `X-PagerDuty-Signature` HMAC with the secrets of the
`pagerduty_events` connection's `webhook_secrets` extra is its credential. Built on first use by the api-server.
"""
from __future__ import annotations

import functools

from airflow.plugins_manager import AirflowPlugin


@functools.cache
def pagerduty_app():
    from include.core.db import get_engine
    from include.incidents.pagerduty_acks import create_app

    return create_app(get_engine)


class PagerDutyWebhookPlugin(AirflowPlugin):
    name = "pagerduty_webhook"

    @property
    def fastapi_apps(self):  # read by the api-server (and `airflow plugins`), never by workers
        return [{"app": pagerduty_app(), "url_prefix": "/pagerduty", "name": "PagerDuty webhooks"}]
