"""Webhook ingest at thousands of events a second (issue 19): the set-based batch insert (one jsonb array per
group commit), the asyncio writers with their own connections, the ASGI fast path for POST /webhook (also when
mounted under the api-server's /whatsapp), against the real PostgreSQL and, where HTTP matters, the real app
under uvicorn (tests/support.ReceiverServer)."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import httpx
import pytest

from include.whatsapp.webhook_receiver import GroupCommitWriter, ReceiverSecrets, ReceiverStats, parse_events
from tests.support import TEST_APP_SECRET, TEST_VERIFY_TOKEN, ReceiverServer
from tests.world import rows, scalar


def _status(i: int, status: str = "delivered", **extra) -> dict:
    return {"id": f"wamid.batch{i:06d}", "status": status, "timestamp": "1763870000",
            "recipient_id": f"91987650{i:04d}", "biz_opaque_callback_data": f"2026-11-23:{i}",
            "pricing": {"billable": True, "pricing_model": "PMP", "category": "marketing", "type": "regular"},
            **extra}


def _inbound(i: int, text: str) -> dict:
    return {"from": f"91987650{i:04d}", "id": f"wamid.in{i:06d}", "timestamp": "1763870100", "type": "text",
            "text": {"body": text}}


def _body(statuses=(), messages=()) -> str:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "918000000001", "phone_number_id": "100000000000001"}}
    if statuses:
        value["statuses"] = list(statuses)
    if messages:
        value["messages"] = list(messages)
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "200000000000001", "changes": [
        {"field": "messages", "value": value}]}]})


def _submit_all(engine, bodies: list[str], writers: int = 1) -> tuple[list, ReceiverStats]:
    """Submit every body at once to one GroupCommitWriter (so they share batches); the outcome of each."""
    stats = ReceiverStats()
    writer = GroupCommitWriter(lambda: engine, stats, writers=writers)

    async def run():
        return await asyncio.gather(*(writer.submit(parse_events(json.loads(b)), b) for b in bodies),
                                    return_exceptions=True)

    return asyncio.run(run()), stats


def test_a_batch_with_duplicates_stores_each_event_once_with_its_full_payload(app_db):
    first = _body([_status(1)])
    _submit_all(app_db, [first])
    # One group commit: a replay of an already stored event, the same new event twice in the batch (a Meta retry
    # racing its original), and a request whose first event is the stored one.
    again = _body([_status(2)])
    mixed = _body([_status(1), _status(3), _status(4)])
    results, stats = _submit_all(app_db, [first, again, again, mixed])
    assert results == [None] * 4
    assert (stats.commits, stats.events_stored, stats.duplicates) == (1, 3, 3)
    got = rows(app_db, "SELECT wamid, payload, raw_body FROM webhook_events ORDER BY event_id")
    assert [g.wamid for g in got] == ["wamid.batch000001", "wamid.batch000002", "wamid.batch000003",
                                      "wamid.batch000004"]
    # The payload column keeps the whole event JSON (spend is derived later from its pricing).
    assert got[2].payload == _status(3) and got[2].payload["pricing"]["category"] == "marketing"
    # Bodies: each request's body once, on its first NEW event; the others name it by sha256.
    assert [g.raw_body for g in got] == [first, again, mixed, "sha256:" + hashlib.sha256(mixed.encode()).hexdigest()]


def test_a_batch_of_single_event_requests_is_one_statement_and_still_dedupes(app_db):
    """Meta's usual shape (one status per request, no opt-out) takes the one-statement path: replays within the
    batch and of stored events are skipped, every stored event keeps its own request body."""
    _submit_all(app_db, [_body([_status(1)])])
    bodies = [_body([_status(i)]) for i in range(1, 30)]
    results, stats = _submit_all(app_db, bodies + bodies[5:10], writers=1)
    assert all(r is None for r in results) and stats.commits == 1
    assert (stats.events_stored, stats.duplicates) == (28, 1 + 5)
    got = rows(app_db, "SELECT wamid, raw_body FROM webhook_events ORDER BY event_id")
    assert [g.wamid for g in got] == [f"wamid.batch{i:06d}" for i in range(1, 30)]
    assert [g.raw_body for g in got[1:]] == bodies[1:]


def test_opt_outs_inside_a_batch_reach_dnc_in_the_same_transaction(app_db):
    stop = _body(messages=[_inbound(7, "STOP please")])
    failed = _body([_status(8, "failed", errors=[{"code": 131050, "title": "user stopped marketing messages"}])])
    chatter = _body(messages=[_inbound(9, "thanks, received")])
    results, stats = _submit_all(app_db, [_body([_status(i)]) for i in range(20)] + [stop, failed, chatter])
    assert all(r is None for r in results) and stats.commits == 1 and stats.opt_outs == 2
    dnc = rows(app_db, "SELECT d.phone_e164, d.source, e.wamid FROM do_not_contact d "
                       "JOIN webhook_events e ON e.event_id = d.source_event_id ORDER BY 1")
    assert [(d.phone_e164, d.source, d.wamid) for d in dnc] == [
        ("+9198765000" + "07", "inbound_opt_out", "wamid.in000007"),
        ("+9198765000" + "08", "api_opt_out", "wamid.batch000008")]
    # The other inbound reply is stored too, and stays off the list.
    assert scalar(app_db, "SELECT count(*) FROM webhook_events WHERE kind = 'message'") == 2
    # A replay of the opt-out adds nothing (only a newly stored event adds an opt-out).
    _, again = _submit_all(app_db, [stop])
    assert again.opt_outs == 0 and scalar(app_db, "SELECT count(*) FROM do_not_contact") == 2


def test_a_failed_opt_out_leaves_none_of_its_request_behind(app_db):
    """No half-written state: the events of a request whose opt-out cannot be written are not stored either,
    and the requests batched with it are."""
    import sqlalchemy as sa

    with app_db.begin() as c:
        c.execute(sa.text("""
            CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.phone_e164 = '+919876500007' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;
            CREATE TRIGGER refuse BEFORE INSERT ON do_not_contact FOR EACH ROW EXECUTE FUNCTION refuse();"""))
    doomed = _body([_status(70)], messages=[_inbound(7, "stop")])
    results, stats = _submit_all(app_db, [_body([_status(1)]), doomed, _body([_status(2)])])
    assert [r is None for r in results] == [True, False, True]
    assert sorted(r.wamid for r in rows(app_db, "SELECT wamid FROM webhook_events")) == [
        "wamid.batch000001", "wamid.batch000002"]
    assert scalar(app_db, "SELECT count(*) FROM do_not_contact") == 0 and stats.store_failures == 2


def test_two_writers_racing_on_the_same_events_store_each_once(app_db):
    bodies = [_body([_status(i), _status(i + 1)]) for i in range(0, 40, 2)]
    replays = bodies[::3]
    results, stats = _submit_all(app_db, bodies + replays + bodies[:5], writers=2)
    assert all(r is None for r in results), results
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 40
    assert stats.events_stored == 40 and stats.duplicates == 2 * (len(replays) + 5)


def _sig(body: bytes, secret: str = TEST_APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_batch_with_a_bad_signature_is_refused_whole(app_db):
    receiver = ReceiverServer(app_db)
    try:
        batch = _body([_status(i) for i in range(50)], [_inbound(99, "STOP")]).encode()
        tampered = batch.replace(b"delivered", b"read", 1)
        for headers, code in [({"X-Hub-Signature-256": _sig(batch, "another-secret")}, 403),
                              ({"X-Hub-Signature-256": _sig(batch)[:-2]}, 403),     # truncated
                              ({"X-Hub-Signature-256": _sig(batch)}, None),         # for the tampered body below
                              ({}, 401)]:
            content = tampered if code is None else batch
            r = httpx.post(receiver.url, content=content, headers=headers)
            assert r.status_code == (code or 403), (headers, r.status_code)
        assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 0
        assert scalar(app_db, "SELECT count(*) FROM do_not_contact") == 0
        assert (receiver.stats.rejected_403, receiver.stats.rejected_401) == (3, 1)
        # The same batch correctly signed is stored whole, its opt-out included.
        assert httpx.post(receiver.url, content=batch, headers={"X-Hub-Signature-256": _sig(batch)}).status_code == 200
        assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 51
        assert scalar(app_db, "SELECT count(*) FROM do_not_contact") == 1
    finally:
        receiver.stop()


@pytest.mark.parametrize("uppercase", [False, True])
def test_the_signature_hex_is_accepted_in_either_case(uppercase):
    from include.whatsapp.webhook_receiver import signature_ok

    body = b'{"object": "whatsapp_business_account"}'
    header = _sig(body)
    assert signature_ok(body, header.upper().replace("SHA256=", "sha256=") if uppercase else header, TEST_APP_SECRET)
    assert not signature_ok(body, header[:-1] + "g", TEST_APP_SECRET)  # not hex
    assert not signature_ok(body, "sha1=" + header[7:], TEST_APP_SECRET)


def test_mounted_under_a_prefix_the_fast_path_and_the_routes_answer_alike(app_db):
    """The api-server mounts the app at /whatsapp: POST /whatsapp/webhook takes the ASGI fast path, GET (the
    handshake) and /webhook/stats go through FastAPI, and the declared POST route (what an app reaching the router
    directly runs) answers like the fast path."""
    from fastapi import FastAPI

    from include.whatsapp.webhook_receiver import create_app

    app = create_app(lambda: app_db, lambda: ReceiverSecrets(TEST_APP_SECRET, TEST_VERIFY_TOKEN))
    through_fastapi = []

    @app.middleware("http")
    async def record(request, call_next):  # FastAPI's stack: the fast path never reaches it
        through_fastapi.append(request.method)
        return await call_next(request)

    parent = FastAPI()
    parent.mount("/whatsapp", app)
    ok = _body([_status(1)]).encode()
    other = _body([_status(2)]).encode()

    async def run():
        transport = httpx.ASGITransport(app=parent)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            posted = await client.post("/whatsapp/webhook", content=ok, headers={"X-Hub-Signature-256": _sig(ok)})
            refused = await client.post("/whatsapp/webhook", content=ok, headers={"X-Hub-Signature-256": _sig(b"x")})
            shake = await client.get("/whatsapp/webhook", params={"hub.mode": "subscribe", "hub.challenge": "5",
                                                                  "hub.verify_token": TEST_VERIFY_TOKEN})
            stats = await client.get("/whatsapp/webhook/stats")
            wrong_method = await client.put("/whatsapp/webhook", content=ok)
        async def without_fast_path(scope, receive, send):
            await FastAPI.__call__(app, scope, receive, send)

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=without_fast_path),
                                     base_url="http://test") as c:
            routed = await c.post("/webhook", content=other, headers={"X-Hub-Signature-256": _sig(other)})
            routed_bad = await c.post("/webhook", content=other)
        return posted, refused, shake, stats, wrong_method, routed, routed_bad

    posted, refused, shake, stats, wrong_method, routed, routed_bad = asyncio.run(run())
    assert (posted.status_code, posted.text) == (200, "ok")
    assert refused.status_code == 403 and (shake.status_code, shake.text) == (200, "5")
    assert stats.json()["events_stored"] == 1 and wrong_method.status_code == 405
    assert (routed.status_code, routed.text) == (200, "ok") and routed_bad.status_code == 401
    # Only the handshake, stats, the PUT and the two requests sent around the fast path went through FastAPI.
    assert through_fastapi == ["GET", "GET", "PUT", "POST", "POST"]
    assert sorted(r.wamid for r in rows(app_db, "SELECT wamid FROM webhook_events")) == [
        "wamid.batch000001", "wamid.batch000002"]


@pytest.mark.e2e
def test_the_standalone_receiver_reads_airflows_connections_and_guards_stats_with_airflow_tokens(
        app_db, airflow_db, monkeypatch, tmp_path):
    """standalone_app(): the production layout, its own process behind the same URL, configured like the
    api-server (connections whatsapp_cloud and app_db, the JWT secret, and Airflow's metadata database, where
    token validation looks up revoked tokens)."""
    import threading
    import time

    import uvicorn

    from airflow.api_fastapi.app import get_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from include.whatsapp.webhook_receiver import standalone_app
    from tests.support import free_port, wait_until

    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER",
                       "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "ops:viewer")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(tmp_path / "passwords.json"))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "test-jwt-secret-" + "x" * 64)
    monkeypatch.setenv("AIRFLOW_CONN_WHATSAPP_CLOUD", json.dumps({
        "conn_type": "http", "host": "http://127.0.0.1:9",
        "extra": {"app_secret": TEST_APP_SECRET, "verify_token": TEST_VERIFY_TOKEN}}))
    purge_cached_app()
    app = standalone_app()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10, what="the standalone receiver started")
        url = f"http://127.0.0.1:{port}/webhook"
        body = _body([_status(1)]).encode()
        assert httpx.post(url, content=body, headers={"X-Hub-Signature-256": _sig(body)}).status_code == 200
        assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 1  # app_db from the Airflow connection
        assert httpx.get(f"{url}/stats").status_code == 401
        assert httpx.get(f"{url}/stats", headers={"Authorization": "Bearer forged"}).status_code in (401, 403)
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="ops", role="viewer"))
        ok = httpx.get(f"{url}/stats", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()["events_stored"] == 1
        started = time.monotonic()
        shake = httpx.get(url, params={"hub.mode": "subscribe", "hub.verify_token": TEST_VERIFY_TOKEN,
                                       "hub.challenge": "9"})
        assert (shake.status_code, shake.text) == (200, "9") and time.monotonic() - started < 5
    finally:
        server.should_exit = True
        thread.join(10)
        purge_cached_app()
