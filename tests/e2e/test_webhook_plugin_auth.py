"""The receiver as the api-server serves it: Airflow's real FastAPI app (airflow.api_fastapi.app.create_app)
loads plugins/whatsapp_webhook.py and mounts it at /whatsapp, under uvicorn, with the SimpleAuthManager.
Operational routes need a logged-in Airflow user; Meta's routes never do."""
from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from tests.world import scalar

pytestmark = pytest.mark.e2e

APP_SECRET, VERIFY_TOKEN, PASSWORD = "plugin-app-secret", "plugin-verify-token", "plugin-admin-password"


@pytest.fixture
def api_server(app_db, airflow_db, tmp_path, monkeypatch):
    from tests.support import running_api_server

    monkeypatch.setenv("AIRFLOW_CONN_WHATSAPP_CLOUD", json.dumps({
        "conn_type": "http", "host": "http://127.0.0.1:9", "password": "unused",
        "extra": {"waba_id": "200000000000001", "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}}))
    with running_api_server(tmp_path, monkeypatch, {"admin": ("admin", PASSWORD)}) as url:
        yield url


def test_stats_need_an_airflow_login_and_metas_routes_stay_open(api_server, app_db):
    hook = f"{api_server}/whatsapp/webhook"
    # Operational: 401 without a token, 403 with a forged one, 200 for a logged-in Airflow user.
    assert httpx.get(f"{hook}/stats").status_code == 401
    assert httpx.get(f"{hook}/stats", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
    login = httpx.post(f"{api_server}/auth/token", json={"username": "admin", "password": PASSWORD})
    assert login.status_code == 201, login.text
    token = login.json()["access_token"]
    stats = httpx.get(f"{hook}/stats", headers={"Authorization": f"Bearer {token}"})
    assert stats.status_code == 200 and "events_stored" in stats.json()
    # Meta-facing: no Airflow login, the verify token and the signature are the credentials.
    hs = httpx.get(hook, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "99"})
    assert (hs.status_code, hs.text) == (200, "99")
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "200000000000001", "changes": [{
        "field": "messages", "value": {"statuses": [{"id": "wamid.PLUGIN", "status": "sent",
                                                     "timestamp": "1763870000", "recipient_id": "919000000001"}]}}]}]})
    sig = "sha256=" + hmac.new(APP_SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    r = httpx.post(hook, content=body, headers={"X-Hub-Signature-256": sig, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert scalar(app_db, "SELECT count(*) FROM webhook_events WHERE wamid = 'wamid.PLUGIN'") == 1
    after = httpx.get(f"{hook}/stats", headers={"Authorization": f"Bearer {token}"}).json()
    assert after["events_stored"] >= 1
