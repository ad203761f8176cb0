"""Rotating the WhatsApp app secret without losing webhooks: during the overlap the receiver accepts signatures
made with the previous secret too (and counts them), after it only the current one."""
import datetime as dt
import hashlib
import hmac
import json

import httpx
import pytest

from include.whatsapp.webhook_receiver import ReceiverSecrets, secrets_from_connection, signed_with
from tests.support import ReceiverServer

NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)
OLD, NEW = "old-app-secret", "new-app-secret"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("secrets, signer, now, expected", [
    (ReceiverSecrets(NEW, "t", OLD, NOW + dt.timedelta(hours=1)), NEW, NOW, "current"),
    (ReceiverSecrets(NEW, "t", OLD, NOW + dt.timedelta(hours=1)), OLD, NOW, "previous"),
    (ReceiverSecrets(NEW, "t", OLD, NOW + dt.timedelta(hours=1)), OLD, NOW + dt.timedelta(hours=1), None),  # over
    (ReceiverSecrets(NEW, "t"), OLD, NOW, None),                                  # no rotation under way
    (ReceiverSecrets(NEW, "t", OLD, NOW + dt.timedelta(hours=1)), "someone-else", NOW, None),
])
def test_which_secret_signed(secrets, signer, now, expected):
    body = b'{"object":"whatsapp_business_account"}'
    assert signed_with(body, sign(body, signer), secrets, now) == expected


@pytest.mark.parametrize("extra, error", [
    ({"previous_app_secret": OLD}, "needs previous_app_secret_until"),
    ({"previous_app_secret": OLD, "previous_app_secret_until": "tomorrow"}, "is not an ISO timestamp"),
    ({"previous_app_secret": OLD, "previous_app_secret_until": "2026-12-02T10:00:00"}, "needs a time zone"),
])
def test_a_half_configured_rotation_is_refused_with_the_reason(monkeypatch, extra, error):
    monkeypatch.setenv("AIRFLOW_CONN_WHATSAPP_CLOUD", json.dumps({
        "conn_type": "http", "host": "http://127.0.0.1:9", "password": "x",
        "extra": {"app_secret": NEW, "verify_token": "t", **extra}}))
    with pytest.raises(RuntimeError, match=error):
        secrets_from_connection()


def test_a_configured_rotation_is_read_from_the_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WHATSAPP_CLOUD", json.dumps({
        "conn_type": "http", "host": "http://127.0.0.1:9", "password": "x",
        "extra": {"app_secret": NEW, "verify_token": "t", "previous_app_secret": OLD,
                  "previous_app_secret_until": "2026-12-02T10:00:00+05:30"}}))
    s = secrets_from_connection()
    assert (s.app_secret, s.previous_app_secret) == (NEW, OLD)
    assert s.previous_until == dt.datetime(2026, 12, 2, 4, 30, tzinfo=dt.UTC)


def test_the_receiver_accepts_both_during_the_overlap_and_counts_the_old_one(app_db):
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    receiver = ReceiverServer(app_db, secrets_factory=lambda: ReceiverSecrets(NEW, "t", OLD, until))
    try:
        body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
        for secret, status in ((NEW, 200), (OLD, 200), ("wrong", 403)):
            r = httpx.post(receiver.url, content=body,
                           headers={"X-Hub-Signature-256": sign(body, secret), "Content-Type": "application/json"})
            assert r.status_code == status, (secret, r.status_code, r.text)
        assert receiver.stats.signed_with_previous_secret == 1 and receiver.stats.rejected_403 == 1
    finally:
        receiver.stop()
