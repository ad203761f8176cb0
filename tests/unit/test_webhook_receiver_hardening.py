"""Hardening of the webhook receiver, through the real app served by uvicorn (tests/support.ReceiverServer)
against the real PostgreSQL: a capped, streamed body (413), 400 (never 500) for signed bodies that are not
WhatsApp webhooks, no body in the logs, the secrets cache right after boot, auth on the operational routes,
and the opt-out reply matcher."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import time

import httpx
import pytest
from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from include.core import config
from include.whatsapp.webhook_receiver import ReceiverSecrets, opt_out_keyword
from tests.support import TEST_APP_SECRET, TEST_VERIFY_TOKEN, ReceiverServer
from tests.world import rows, scalar


def sig(body: bytes, secret: str = TEST_APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(body: bytes) -> dict:
    return {"X-Hub-Signature-256": sig(body), "Content-Type": "application/json"}


@pytest.fixture
def servers():
    started: list[ReceiverServer] = []

    def start(engine, **options) -> ReceiverServer:
        r = ReceiverServer(engine, **options)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def _status(i: int, status: str = "delivered") -> dict:
    """A status update as Meta sends it, with every field a real one carries."""
    item = {"id": f"wamid.HBgNOTE5ODc2NTQzMjEwFQIAERgSQjZGOTUwRDRFNzg2MUEzN0VEAA{i:06d}=", "status": status,
            "timestamp": "1763870000", "recipient_id": f"9198765{i:05d}", "biz_opaque_callback_data": f"2026-11-23:{i}",
            "conversation": {"id": "a75d17ad06104c51166f948319b03c6a", "expiration_timestamp": "1763956400",
                             "origin": {"type": "marketing"}},
            "pricing": {"billable": True, "pricing_model": "PMP", "category": "marketing", "type": "regular"}}
    if status == "failed":
        item["errors"] = [{"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
                           "error_data": {"details": "Message Undeliverable."},
                           "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]
    return item


def _webhook(statuses: list[dict]) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "200000000000001", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp",
                                       "metadata": {"display_phone_number": "918000000001",
                                                    "phone_number_id": "100000000000001"},
                                       "statuses": statuses}}]}]}).encode()


def _raw_exchange(port: int, head: bytes, chunks=(), timeout: float = 5.0) -> bytes:
    """Send a request head and some body bytes over a plain socket, then read what the server answers
    (without ever finishing the body, so a server that waits for all of it never answers)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        for c in chunks:
            s.sendall(c)
        try:
            return s.recv(65536)
        except TimeoutError:
            return b""


# -- 2. body size cap --------------------------------------------------------------------------------------
def test_meta_sized_batches_fit_under_the_cap_and_are_stored(app_db, servers):
    receiver = servers(app_db)
    statuses = [_status(i, "failed" if i % 2 else "delivered") for i in range(1000)]  # Meta's largest batch
    body = _webhook(statuses)
    assert len(body) < config.WEBHOOK_MAX_BODY_BYTES / 4, len(body)
    assert config.WEBHOOK_MAX_BODY_BYTES == 3 * 1024 * 1024
    started = time.monotonic()
    r = httpx.post(receiver.url, content=body, headers=signed(body), timeout=30)
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 5  # Meta waits for the 200; a slow answer is a retry storm
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 1000
    # The signed body is stored once (not 1,000 times); every other event names it by its sha256.
    got = rows(app_db, "SELECT raw_body, count(*) AS n FROM webhook_events GROUP BY raw_body ORDER BY n")
    assert [(g.raw_body, g.n) for g in got] == [(body.decode(), 1), ("sha256:" + hashlib.sha256(body).hexdigest(), 999)]


def test_a_request_whose_first_event_is_a_replay_keeps_its_body_on_its_first_new_event(app_db, servers):
    receiver = servers(app_db)
    first = _webhook([_status(1)])
    assert httpx.post(receiver.url, content=first, headers=signed(first)).status_code == 200
    second = _webhook([_status(1), _status(2), _status(3)])  # event 1 again, then two new ones
    assert httpx.post(receiver.url, content=second, headers=signed(second)).status_code == 200
    got = [r.raw_body for r in rows(app_db, "SELECT raw_body FROM webhook_events ORDER BY event_id")]
    assert got == [first.decode(), second.decode(), "sha256:" + hashlib.sha256(second).hexdigest()]


def test_a_declared_content_length_over_the_cap_is_refused_at_once_without_reading_the_body(app_db, servers):
    receiver = servers(app_db)
    size = config.WEBHOOK_MAX_BODY_BYTES + 1
    head = (f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: sha256={'0' * 64}\r\nContent-Length: {size}\r\n\r\n").encode()
    started = time.monotonic()
    answer = _raw_exchange(receiver.port, head, timeout=5)  # not one byte of the body is sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - started < 3
    assert receiver.stats.rejected_413 == 1 and receiver.stats.rejected_403 == 0
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 0


def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_cap(app_db, servers):
    receiver = servers(app_db)
    head = (b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"X-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"x" * (64 * 1024)
    n = config.WEBHOOK_MAX_BODY_BYTES // len(piece)
    # Exactly the cap, then one byte more, and the body is never finished (no terminating 0-chunk):
    # the 413 must come from the size alone, before the end of the body.
    chunks = [b"%x\r\n" % len(piece) + piece + b"\r\n"] * n + [b"1\r\nx\r\n"]
    answer = _raw_exchange(receiver.port, head, chunks, timeout=10)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert receiver.stats.rejected_413 == 1
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 0


def test_a_body_at_the_cap_is_read_and_a_smaller_cap_is_honoured(app_db, servers):
    receiver = servers(app_db, max_body_bytes=2048)
    small = _webhook([_status(1)])
    assert len(small) <= 2048
    assert httpx.post(receiver.url, content=small, headers=signed(small)).status_code == 200
    big = _webhook([_status(i) for i in range(10)])
    assert httpx.post(receiver.url, content=big, headers=signed(big)).status_code == 413
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 1


# -- 2. signed bodies that are not webhooks: 400, never 500 --------------------------------------------------
_WABA = {"object": "whatsapp_business_account"}
BAD_BODIES = {
    "array": b"[]", "string": b'"x"', "number": b"1", "null": b"null", "true": b"true", "empty": b"",
    "not json": b"{oops", "not utf-8": b'{"object": "\xff"}', "utf-16": json.dumps(_WABA).encode("utf-16"),
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "entry not a list": json.dumps({**_WABA, "entry": "x"}).encode(),
    "entry item not an object": json.dumps({**_WABA, "entry": [1]}).encode(),
    "changes not a list": json.dumps({**_WABA, "entry": [{"changes": {"a": 1}}]}).encode(),
    "change not an object": json.dumps({**_WABA, "entry": [{"changes": ["x"]}]}).encode(),
    "value not an object": json.dumps({**_WABA, "entry": [{"changes": [{"value": []}]}]}).encode(),
    "value a string": json.dumps({**_WABA, "entry": [{"changes": [{"value": "x"}]}]}).encode(),
    "statuses not a list": json.dumps({**_WABA, "entry": [{"changes": [{"value": {"statuses": {}}}]}]}).encode(),
    "status not an object": json.dumps({**_WABA, "entry": [{"changes": [{"value": {"statuses": [7]}}]}]}).encode(),
    "status id a number": json.dumps({**_WABA, "entry": [{"changes": [{"value": {"statuses": [
        {"id": 5, "status": "sent"}]}}]}]}).encode(),
    "messages item a list": json.dumps({**_WABA, "entry": [{"changes": [{"value": {"messages": [[]]}}]}]}).encode(),
    "message without id": json.dumps({**_WABA, "entry": [{"changes": [{"value": {"messages": [
        {"from": "919876543210", "type": "text", "text": {"body": "STOP"}}]}}]}]}).encode(),
    "user_preferences not a list": json.dumps({**_WABA, "entry": [{"changes": [{"value": {
        "user_preferences": "stop"}}]}]}).encode(),
    "errors not a list": json.dumps({**_WABA, "entry": [{"changes": [{"value": {"errors": 131000}}]}]}).encode(),
    "another object type": json.dumps({"object": "page", "entry": []}).encode(),
}


def test_signed_bodies_that_are_not_webhooks_are_400_never_500(app_db, servers):
    receiver = servers(app_db)
    got = {}
    for name, body in BAD_BODIES.items():
        got[name] = httpx.post(receiver.url, content=body, headers=signed(body)).status_code
    assert got == dict.fromkeys(BAD_BODIES, 400)
    assert receiver.stats.bad_requests == len(BAD_BODIES)
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 0
    # The receiver still works after all of them.
    ok = _webhook([_status(1)])
    assert httpx.post(receiver.url, content=ok, headers=signed(ok)).status_code == 200


def test_odd_but_valid_values_inside_a_webhook_do_not_break_it(app_db, servers):
    receiver = servers(app_db)
    body = json.dumps({**_WABA, "entry": [{"id": "1", "changes": [{"value": {"statuses": [
        {"id": "wamid.odd", "status": "failed", "timestamp": "99999999999999999999", "recipient_id": 919876543210,
         "errors": "not a list"}],
        "messages": [{"id": "wamid.in.odd", "from": "+91 98765", "type": "text", "text": "not an object"}]}},
        {"value": None}]}]}).encode()
    r = httpx.post(receiver.url, content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 2
    assert scalar(app_db, "SELECT count(*) FROM do_not_contact") == 0


# -- 4. logs never carry the body -----------------------------------------------------------------------------
def test_an_unparseable_body_is_logged_by_reason_size_and_digest_never_by_content(app_db, servers, caplog):
    receiver = servers(app_db)
    phone, text = "919876543210", "my private reply"
    body = json.dumps({**_WABA, "entry": [{"changes": [{"value": {
        "statuses": [{"status": "read", "recipient_id": phone}],  # no id: not a valid status
        "messages": [{"id": "wamid.x", "from": phone, "type": "text", "text": {"body": text}}]}}]}]}).encode()
    with caplog.at_level(logging.DEBUG):
        r = httpx.post(receiver.url, content=body, headers=signed(body))
        deadline = time.monotonic() + 5
        while not any("unparseable" in m for m in caplog.messages) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert r.status_code == 400
    assert phone not in r.text and text not in r.text
    logged = "\n".join(caplog.messages)
    assert "unparseable signed webhook" in logged
    assert hashlib.sha256(body).hexdigest() in logged and f"{len(body)} bytes" in logged
    assert phone not in logged and text not in logged and "recipient_id" not in logged


# -- 5. secrets right after boot, and rotation ----------------------------------------------------------------
def test_the_receiver_answers_in_its_first_minute_after_boot(app_db, servers, monkeypatch):
    """time.monotonic() counts from boot: a receiver started in the machine's first minute used to raise
    KeyError (500) for every request until monotonic() passed 60."""
    import types

    from include.whatsapp import webhook_receiver

    monkeypatch.setattr(webhook_receiver, "time", types.SimpleNamespace(monotonic=lambda: 12.5, time=time.time))
    receiver = servers(app_db)
    hs = httpx.get(receiver.url, params={"hub.mode": "subscribe", "hub.verify_token": TEST_VERIFY_TOKEN,
                                         "hub.challenge": "42"})
    assert (hs.status_code, hs.text) == (200, "42")
    body = _webhook([_status(1)])
    assert httpx.post(receiver.url, content=body, headers=signed(body)).status_code == 200


def test_secrets_are_read_on_the_first_request_even_just_after_boot(app_db, servers):
    now = [5.0]  # time.monotonic() a few seconds after the machine booted
    reads = []

    def secrets():
        reads.append(now[0])
        return ReceiverSecrets(TEST_APP_SECRET, f"token-{len(reads)}")

    receiver = servers(app_db, secrets_factory=secrets, clock=lambda: now[0])

    def handshake(token):
        return httpx.get(receiver.url, params={"hub.mode": "subscribe", "hub.verify_token": token,
                                               "hub.challenge": "42"})

    first = handshake("token-1")
    assert (first.status_code, first.text) == (200, "42")
    body = _webhook([_status(1)])
    assert httpx.post(receiver.url, content=body, headers=signed(body)).status_code == 200
    now[0] = 5.0 + config.WEBHOOK_SECRETS_TTL_S - 1  # still cached
    assert handshake("token-1").status_code == 200 and reads == [5.0]
    now[0] = 5.0 + config.WEBHOOK_SECRETS_TTL_S + 1  # re-read: a rotated secret takes effect
    assert handshake("token-2").status_code == 200
    assert handshake("token-1").status_code == 403
    assert len(reads) == 2


# -- 3. operational routes need a logged-in user; Meta's routes never do ---------------------------------------
_bearer = HTTPBearer(auto_error=False)


def airflow_like_auth(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
    """Mirrors airflow.api_fastapi.core_api.security.get_user: no token 401, a bad token 403."""
    if credentials is None:
        raise HTTPException(status_code=401, detail="Not authenticated")
    if credentials.credentials != "valid-token":
        raise HTTPException(status_code=403, detail="Invalid JWT token")
    return "ops-user"


def test_stats_need_an_authenticated_user_when_an_auth_dependency_is_configured(app_db, servers):
    receiver = servers(app_db, ops_auth=airflow_like_auth)
    stats_url = f"{receiver.url}/stats"
    assert httpx.get(stats_url).status_code == 401
    assert httpx.get(stats_url, headers={"Authorization": "Bearer forged"}).status_code == 403
    ok = httpx.get(stats_url, headers={"Authorization": "Bearer valid-token"})
    assert ok.status_code == 200 and "events_stored" in ok.json()
    # Meta cannot log in: the handshake and signed POSTs stay open.
    hs = httpx.get(receiver.url, params={"hub.mode": "subscribe", "hub.verify_token": TEST_VERIFY_TOKEN,
                                         "hub.challenge": "7"})
    assert (hs.status_code, hs.text) == (200, "7")
    body = _webhook([_status(1)])
    assert httpx.post(receiver.url, content=body, headers=signed(body)).status_code == 200


def _calls(dependant) -> set:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def test_the_plugin_guards_stats_with_airflows_own_user_dependency():
    import importlib.util

    from airflow.api_fastapi.core_api.security import get_user
    from starlette.routing import Route

    from tests.support import ROOT

    spec = importlib.util.spec_from_file_location("whatsapp_webhook_plugin", ROOT / "plugins" / "whatsapp_webhook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    [entry] = module.WhatsAppWebhookPlugin().fastapi_apps
    assert entry["url_prefix"] == "/whatsapp"
    routes = {(r.path, m): r for r in entry["app"].routes if isinstance(r, Route) for m in r.methods}
    assert get_user in _calls(routes[("/webhook/stats", "GET")].dependant)
    for meta_facing in (("/webhook", "GET"), ("/webhook", "POST")):
        assert get_user not in _calls(routes[meta_facing].dependant), meta_facing


# -- 6. opt-out replies -------------------------------------------------------------------------------------
OPT_OUT_CASES = [
    # (text, keyword it opts out with, or None)
    ("STOP", "stop"), ("stop", "stop"), (" Stop. ", "stop"), ("STOP!!!", "stop"), ("“STOP”", "stop"),
    ("STOP please", "stop"), ("please stop", "stop"), ("Please STOP!", "stop"), ("please, stop", "stop"),
    ("pls stop", "stop"), ("Kindly stop", "stop"), ("please please stop", "stop"), ("ＳＴＯＰ", "stop"),
    ("Stop sending these", "stop"), ("stop 🙏", "stop"), ("stop—please", "stop"),
    ("stop all", "stop all"), ("STOP ALL", "stop all"), ("please stop all", "stop all"),
    ("opt-out", "opt out"), ("Opt-Out", "opt out"), ("OPT OUT", "opt out"), ("opt out please", "opt out"),
    ("opt–out", "opt out"), ("opt‑out", "opt out"), ("opt_out", "opt out"), ("optout", "optout"),
    ("please opt-out", "opt out"), ("Unsubscribe", "unsubscribe"), ("unsubscribe me", "unsubscribe"),
    ("please unsubscribe", "unsubscribe"), ("cancel", "cancel"), ("QUIT", "quit"), ("end", "end"),
    ("रोकें", "रोकें"), ("बंद", "बंद"), ("बंद करें", "बंद करें"), ("बंद करें।", "बंद करें"), ("बंद करो", "बंद"),
    ("कृपया बंद करें", "बंद करें"), ("कृपया रोकें", "रोकें"), ("रुको", "रुको"), ("मैसेज बंद करो", "बंद"),
    ("मैसेज भेजना बंद करें", "बंद करें"), ("संदेश रोकें", "रोकें"), ("प्लीज़ बंद करो", "बंद"),
    # not opt-outs
    ("Don't stop the updates", None), ("don't stop", None), ("Please don't stop sending these", None),
    ("please do not stop", None), ("Dont stop", None), ("don’t stop", None), ("Never stop these", None),
    ("please never stop", None), ("बंद मत करो", None), ("बंद मत करना", None), ("कृपया बंद मत करें", None),
    ("रोकें नहीं", None), ("बंद न करें", None), ("Thanks for the update", None), ("Please send me more", None),
    ("stopwatch", None), ("unstoppable", None), ("Can you stop by the office tomorrow to discuss", None),
    ("Why did you stop?", None), ("please", None), ("मार्केट बंद है", None), ("दुकान बंद", None),
    ("", None), ("   ", None), ("!!!", None), ("🙏", None), (None, None),
]


@pytest.mark.parametrize("text,expected", OPT_OUT_CASES, ids=[repr(t) for t, _ in OPT_OUT_CASES])
def test_opt_out_replies_in_english_and_hindi(text, expected):
    assert opt_out_keyword(text) == expected


# -- group commit: one bad request does not fail the requests batched with it ---------------------------------
def test_a_failing_request_in_a_group_commit_fails_alone(app_db):
    import asyncio

    import sqlalchemy as sa

    from include.whatsapp.webhook_receiver import GroupCommitWriter, ReceiverStats, parse_events

    with app_db.begin() as c:
        c.execute(sa.text("""
            CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.phone_e164 = '+919800000013' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;
            CREATE TRIGGER refuse_one BEFORE INSERT ON do_not_contact FOR EACH ROW EXECUTE FUNCTION refuse_one();"""))

    def request(i: int):
        item = {**_status(i, "failed"), "recipient_id": f"9198000000{i:02d}"}
        item["errors"] = [{"code": 131050, "title": "user has stopped marketing messages"}]
        body = _webhook([item]).decode()
        return parse_events(json.loads(body)), body

    stats = ReceiverStats()
    writer = GroupCommitWriter(lambda: app_db, stats)

    async def run():
        return await asyncio.gather(*(writer.submit(*request(i)) for i in range(10, 16)), return_exceptions=True)

    results = asyncio.run(run())
    assert [r is None for r in results] == [True, True, True, False, True, True]
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 5
    assert scalar(app_db, "SELECT count(*) FROM do_not_contact WHERE source = 'api_opt_out'") == 5
    assert stats.store_failures == 2 and stats.opt_outs == 5
