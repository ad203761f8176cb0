"""The sandbox's SMTP sink (devtools/sandbox/smtp_sink.py): a real SMTP server that keeps what it receives, shows it
over the sandbox's HTTP API, answers injected 451s, and forgets everything on reset. Talked to with smtplib and
with Airflow's SmtpHook (the production path of the advisor notices)."""
from __future__ import annotations

import json
import smtplib
from email.message import EmailMessage

import pytest
from starlette.testclient import TestClient

from devtools.sandbox.app import create_app


@pytest.fixture
def sandbox():
    with TestClient(create_app(smtp_port=0)) as client:   # the lifespan starts the sink on a free port
        yield client, client.app.state.mail.port


def _send(port: int, to: str, subject: str = "Delay", message_id: str = "<n-1@test>") -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "notices@example.in", to, subject, message_id
    msg.set_content("<p>Expected by 06:26 IST</p>", subtype="html")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(msg)


def test_messages_are_kept_and_listed_by_recipient(sandbox):
    client, port = sandbox
    _send(port, "a@example.in", message_id="<n-1@test>")
    _send(port, "b@example.in", message_id="<n-2@test>")
    got = client.get("/_sandbox/mail").json()
    assert got["port"] == port and [m["rcpt_tos"] for m in got["messages"]] == [["a@example.in"], ["b@example.in"]]
    only_b = client.get("/_sandbox/mail", params={"to": "b@example.in"}).json()["messages"]
    assert [(m["message_id"], m["content_type"]) for m in only_b] == [("<n-2@test>", "text/html")]
    assert "Expected by 06:26 IST" in only_b[0]["body"]


def test_injected_451_then_success_and_reset_forgets(sandbox):
    client, port = sandbox
    assert client.post("/_sandbox/mail/faults", json={"fail_next": 1}).json() == {"fail_next": 1}
    with pytest.raises(smtplib.SMTPDataError) as err:
        _send(port, "a@example.in")
    assert err.value.smtp_code == 451
    _send(port, "a@example.in")
    assert len(client.get("/_sandbox/mail").json()["messages"]) == 1
    client.post("/_sandbox/reset").raise_for_status()
    assert client.get("/_sandbox/mail").json()["messages"] == []
    assert client.post("/_sandbox/mail/faults", json={"nope": 1}).status_code == 400


def test_airflow_smtp_hook_delivers_to_the_sink(sandbox, monkeypatch):
    from include.advisor_notices.email import SmtpMailer

    client, port = sandbox
    monkeypatch.setenv("AIRFLOW_CONN_ADVISOR_EMAIL", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"from_email": "notices@example.in", "disable_ssl": True, "disable_tls": True, "retry_limit": 0}}))
    with SmtpMailer() as mailer:
        mailer.send("advisor7@example.in", "Today's content pack is delayed", "<p>ETA 06:26</p>", "<n-7@test>")
    (msg,) = client.get("/_sandbox/mail").json()["messages"]
    assert (msg["from"], msg["to"], msg["message_id"]) == ("notices@example.in", "advisor7@example.in", "<n-7@test>")
