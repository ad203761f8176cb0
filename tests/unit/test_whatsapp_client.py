"""Contract tests of the WhatsApp client against the sandbox over real HTTP: one per error class."""
import asyncio

import pytest

from include.whatsapp.client import (
    ERROR_CLASSES, AsyncWhatsAppClient, ErrorClass, WhatsAppClient, WhatsAppError, WhatsAppHook,
    WhatsAppSettings, build_template_message, classify,
)
from tests.support import TEST_TOKEN

PNID = "100000000000001"
PARAMS = ["Asha", "Market view", "Investments are subject to market risks."]


@pytest.fixture
def settings(sandbox):
    return WhatsAppSettings(base_url=sandbox.url, access_token=TEST_TOKEN, waba_id="200000000000001",
                            read_timeout_s=2.0)


def send(settings, to="+919812345678", template="daily_pack_v1", params=PARAMS, pnid=PNID, key=None,
         image_link="https://cdn.example/x.png", **kw):
    async def go():
        async with AsyncWhatsAppClient(settings) as c:
            return await c.send_template(pnid, to, template, "en", params, image_link=image_link,
                                         biz_opaque_callback_data=key, **kw)
    return asyncio.run(go())


def expect(settings, code, klass, **kw):
    with pytest.raises(WhatsAppError) as info:
        send(settings, **kw)
    assert info.value.code == code
    assert info.value.error_class is klass
    return info.value


def test_success_returns_wamid_and_records_idempotency_key(settings, sandbox):
    res = send(settings, key="2026-11-23:42")
    assert res.wamid.startswith("wamid.") and res.wa_id == "919812345678"
    [entry] = sandbox.ledger(key="2026-11-23:42")
    assert entry["wamid"] == res.wamid and entry["body_params"] == PARAMS
    assert entry["header_image"] == "https://cdn.example/x.png"


def test_throughput_class(settings, sandbox):
    sandbox.faults(storm_rate=1.0, storm_for_s=30)
    err = expect(settings, 130429, ErrorClass.THROUGHPUT)
    # Meta answers 130429 with HTTP 400 (DEFAULT_HTTP_STATUS); the class comes from the code alone
    assert err.retryable and err.http_status == 400


def test_pair_rate_class(settings, sandbox):
    sandbox.configure(pair_burst=1)
    send(settings)
    err = expect(settings, 131056, ErrorClass.PAIR_RATE)
    assert err.retryable


def test_transient_class_5xx(settings, sandbox):
    sandbox.faults(error_5xx_rate=1.0)
    with pytest.raises(WhatsAppError) as info:
        send(settings)
    assert info.value.code in (131000, 131016) and info.value.http_status >= 500
    assert info.value.error_class is ErrorClass.TRANSIENT and info.value.retryable


def test_timeout_is_transient_with_unknown_outcome_and_the_message_was_accepted(settings, sandbox):
    sandbox.faults(timeout_rate=1.0, timeout_hang_s=4)
    with pytest.raises(WhatsAppError) as info:
        send(settings, key="timeout-key")
    assert info.value.outcome_unknown and info.value.retryable and info.value.code is None
    assert len(sandbox.ledger(key="timeout-key")) == 1  # why a blind resend would duplicate


def test_connection_reset_is_transient_with_unknown_outcome(settings, sandbox):
    sandbox.faults(reset_rate=1.0)
    with pytest.raises(WhatsAppError) as info:
        send(settings)
    assert info.value.outcome_unknown and info.value.retryable


def test_connection_refused_is_transient_and_known_not_sent(sandbox):
    s = WhatsAppSettings(base_url="http://127.0.0.1:9", access_token="x", waba_id="1", connect_timeout_s=1)
    with pytest.raises(WhatsAppError) as info:
        send(s)
    assert info.value.retryable and not info.value.outcome_unknown


def test_auth_class(settings, sandbox):
    bad = WhatsAppSettings(base_url=settings.base_url, access_token="wrong", waba_id=settings.waba_id)
    err = expect(bad, 190, ErrorClass.AUTH)
    assert not err.retryable and err.http_status == 401
    sandbox.faults(token_expires_in_s=0)
    expect(settings, 190, ErrorClass.AUTH)


@pytest.mark.parametrize("status,code", [("PAUSED", 132015), ("DISABLED", 132016), ("PENDING", 132001)])
def test_template_class_for_unapproved_templates(settings, sandbox, status, code):
    sandbox.admin.post("/_sandbox/templates/daily_pack_v1", json={"status": status}).raise_for_status()
    assert not expect(settings, code, ErrorClass.TEMPLATE).retryable


def test_template_class_for_param_mismatch_and_unknown_template(settings, sandbox):
    expect(settings, 132000, ErrorClass.TEMPLATE, params=["only one"])
    expect(settings, 132001, ErrorClass.TEMPLATE, template="no_such_template")


def test_permanent_recipient_class_via_research_numbers(settings, sandbox):
    err = expect(settings, 131050, ErrorClass.PERMANENT_RECIPIENT, to="+919900000006")
    assert err.proposes_dnc and not err.retryable
    err = expect(settings, 131026, ErrorClass.PERMANENT_RECIPIENT, to="+919900000007")
    assert not err.proposes_dnc and not err.retryable


def test_policy_class(settings, sandbox):
    sandbox.admin.post(f"/_sandbox/numbers/{PNID}", json={"policy_blocked": True}).raise_for_status()
    err = expect(settings, 368, ErrorClass.POLICY)
    assert err.http_status == 403 and not err.retryable


def test_classification_table_is_complete_and_by_code_not_status():
    assert classify(131026, 500) is ErrorClass.PERMANENT_RECIPIENT  # code wins over HTTP status
    assert classify(999999, 502) is ErrorClass.TRANSIENT
    assert classify(999999, 400) is ErrorClass.INVALID_REQUEST
    for codes, klass in [((130429, 80007, 4), ErrorClass.THROUGHPUT), ((131056,), ErrorClass.PAIR_RATE),
                         ((131000, 131016), ErrorClass.TRANSIENT), ((190,), ErrorClass.AUTH),
                         ((132000, 132001, 132015, 132016), ErrorClass.TEMPLATE),
                         ((131026, 131047, 131049, 131050), ErrorClass.PERMANENT_RECIPIENT),
                         ((368, 131048), ErrorClass.POLICY)]:
        assert all(ERROR_CLASSES[c] is klass for c in codes)


def test_sync_checks_phone_number_templates_paging_and_health(settings, sandbox):
    with WhatsAppClient(settings) as c:
        assert c.health()["id"] == "200000000000001"
        num = c.get_phone_number(PNID)
        assert num["quality_rating"] == "GREEN" and num["throughput"]["level"] == "STANDARD"
        assert num.messaging_tier == "TIER_100K" and num["status"] == "CONNECTED"
        assert "messaging_limit_tier" not in num  # deprecated: never requested
        for i in range(7):
            c.create_template(f"extra_{i}", "en", "MARKETING", [{"type": "BODY", "text": "Hi {{1}}"}])
        templates = c.list_templates(page_size=2)  # forces several pages
        names = [t["name"] for t in templates]
        assert len(names) == len(set(names)) == 12
        assert {t["status"] for t in templates if t["name"].startswith("extra_")} == {"PENDING"}


def test_hook_reads_the_whatsapp_cloud_connection(settings, sandbox):
    hook = WhatsAppHook()
    s = hook.get_settings()
    assert s.base_url == sandbox.url and s.waba_id == "200000000000001"
    assert TEST_TOKEN not in repr(s)
    assert hook.test_connection()[0] is True


def test_payload_shape_and_token_never_logged(settings, sandbox, caplog):
    body = build_template_message("+919812345678", "t", "en", ["a"], image_id="media-1", biz_opaque_callback_data="k")
    assert body["template"]["components"][0]["parameters"][0]["image"] == {"id": "media-1"}
    assert body["biz_opaque_callback_data"] == "k"
    caplog.set_level("DEBUG")
    sandbox.faults(reset_rate=1.0)
    with pytest.raises(WhatsAppError):
        send(settings)
    assert TEST_TOKEN not in caplog.text
    assert "9812345678" not in caplog.text


# ---------------------------------------------------------------- issue 14: current Graph shapes
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_send_result_exposes_message_status_and_pacing_hold(settings, sandbox):
    res = send(settings)
    assert res.message_status == "accepted" and not res.held_for_quality_assessment
    sandbox.faults(pacing_rate=1.0, pacing_templates=["daily_pack_v1"])
    held = send(settings, to="+919812345679")
    assert held.message_status == "held_for_quality_assessment" and held.held_for_quality_assessment
    [entry] = sandbox.ledger(to="+919812345679")
    assert entry["message_status"] == "held_for_quality_assessment"


def test_send_response_parsing_is_tolerant_and_names_a_missing_field():
    from include.whatsapp.client import _success_payload

    ok = _success_payload(200, b'{"messaging_product":"whatsapp","new_top":1,"contacts":[{"input":"+1","wa_id":"1",'
                               b'"user_id":"US.1"}],"messages":[{"id":"wamid.X","group_id":"g","future":true}]}', 0.0)
    assert ok.wamid == "wamid.X" and ok.wa_id == "1" and ok.message_status is None
    for payload in (b'{"messaging_product":"whatsapp","messages":[]}', b'{"messages":[{"message_status":"accepted"}]}',
                    b'{"contacts":[]}', b"not json", b"[]"):
        with pytest.raises(WhatsAppError) as info:
            _success_payload(200, payload, 0.0)
        assert "messages[0].id" in str(info.value) and info.value.outcome_unknown


def test_phone_number_tier_comes_from_the_current_field(settings, sandbox):
    sandbox.configure(messaging_tier="TIER_2K")
    with WhatsAppClient(settings) as c:
        num = c.get_phone_number(PNID)
    assert num.messaging_tier == "TIER_2K" and num["whatsapp_business_manager_messaging_limit"] == "TIER_2K"
    assert num.quality_rating == "GREEN" and num.status == "CONNECTED" and num.throughput_level == "STANDARD"
    sandbox.configure(messaging_tier="TIER_NOT_SET")  # Meta's value for a number that has not sent yet
    with WhatsAppClient(settings) as c:
        assert c.get_phone_number(PNID).messaging_tier == "UNKNOWN"


def _mock_client(handler) -> WhatsAppClient:
    import httpx

    s = WhatsAppSettings(base_url="https://graph.example", access_token="t", waba_id="1")
    return WhatsAppClient(s, transport=httpx.MockTransport(handler))


def test_phone_number_parsing_tolerates_unknown_fields_and_never_reads_the_deprecated_tier():
    import httpx

    def answer(body):
        return lambda request: httpx.Response(200, json=body)

    c = _mock_client(answer({"id": "5", "quality_rating": "YELLOW", "brand_new_field": {"x": 1},
                             "messaging_limit_tier": "TIER_100K"}))
    num = c.get_phone_number("5")
    assert num["brand_new_field"] == {"x": 1} and num.quality_rating == "YELLOW"
    assert num.messaging_tier == "UNKNOWN"  # only whatsapp_business_manager_messaging_limit counts
    c = _mock_client(answer({"id": "5", "whatsapp_business_manager_messaging_limit": {"current_limit": "TIER_10K"}}))
    assert c.get_phone_number("5").messaging_tier == "TIER_10K"
    c = _mock_client(answer({"quality_rating": "GREEN"}))
    with pytest.raises(WhatsAppError, match="'id'"):
        c.get_phone_number("5")


def test_list_templates_follows_next_and_reads_current_fields(settings, sandbox):
    from include.whatsapp.client import TEMPLATE_FIELDS

    with WhatsAppClient(settings) as c:
        templates = c.list_templates(page_size=2)
    assert [t["name"] for t in templates] == ["daily_pack_v1", "daily_pack_v2", "daily_pack_hi_v1", "daily_pack_hi_v2",
                                              "canary_ping"]
    assert all(set(t) == set(TEMPLATE_FIELDS) for t in templates)
    assert templates[0]["quality_score"]["score"] == "GREEN" and templates[0]["parameter_format"] == "POSITIONAL"


def test_list_templates_paging_edge_cases():
    import httpx

    seen = []

    def foreign_next(request):
        seen.append(request.url)
        if "after" not in request.url.params:
            return httpx.Response(200, json={"data": [{"id": "1", "name": "a", "language": "en", "status": "APPROVED"}],
                                             "paging": {"cursors": {"after": "C1"},
                                                        "next": "https://elsewhere.example/v21.0/1/message_templates"}})
        return httpx.Response(200, json={"data": [{"id": "2", "name": "b", "language": "en", "status": "APPROVED"}],
                                         "paging": {"cursors": {"before": "C2", "after": "C2"}}})

    names = [t["name"] for t in _mock_client(foreign_next).list_templates(page_size=1)]
    assert names == ["a", "b"] and all(u.host == "graph.example" for u in seen)  # the token never left our host
    assert seen[1].params["after"] == "C1" and seen[1].params["fields"] == seen[0].params["fields"]

    loop = {"data": [], "paging": {"next": "https://graph.example/v21.0/1/message_templates?after=X"}}
    with pytest.raises(WhatsAppError, match="same next link"):
        _mock_client(lambda r: httpx.Response(200, json=loop)).list_templates()
    with pytest.raises(WhatsAppError, match="'name'"):
        _mock_client(lambda r: httpx.Response(200, json={"data": [{"id": "1"}]})).list_templates()
    with pytest.raises(WhatsAppError, match="'data'"):
        _mock_client(lambda r: httpx.Response(200, json={"templates": []})).list_templates()


def test_media_upload_send_by_id_get_and_delete(settings, sandbox):
    with WhatsAppClient(settings) as c:
        media_id = c.upload_media(PNID, PNG, "image/png", "header.png")
        info = c.get_media(media_id, PNID)
        assert info["mime_type"] == "image/png" and info.file_size == len(PNG) and info["id"] == media_id
        res = send(settings, image_link=None, image_id=media_id, key="media-key")
        assert res.message_status == "accepted"
        assert sandbox.ledger(key="media-key")[0]["header_image"] == media_id
        assert c.delete_media(media_id) is True
        with pytest.raises(WhatsAppError) as gone:
            c.get_media(media_id)
        assert gone.value.code == 100 and gone.value.error_subcode == 33
    err = expect(settings, 131009, ErrorClass.INVALID_REQUEST, image_link=None, image_id=media_id)
    assert not err.retryable


@pytest.mark.parametrize("content,mime", [(b"GIF89a" + b"\0" * 10, "image/gif"),
                                          (b"\xff\xd8\xff" + b"\0" * (5 * 1024 * 1024), "image/jpeg")])
def test_media_upload_rejected_like_meta(settings, sandbox, content, mime):
    with WhatsAppClient(settings) as c, pytest.raises(WhatsAppError) as info:
        c.upload_media(PNID, content, mime)
    assert info.value.code == 131053 and info.value.error_class is ErrorClass.INVALID_REQUEST


def test_graph_error_fields_are_surfaced(settings, sandbox):
    with WhatsAppClient(settings) as c, pytest.raises(WhatsAppError) as info:
        c.create_template("daily_pack_v1", "en", "MARKETING", [{"type": "BODY", "text": "Hi {{1}}"}])
    err = info.value
    assert err.code == 100 and err.error_subcode == 2388024 and err.is_transient is False
    assert err.error_user_title and err.error_user_msg and err.error_user_msg in str(err)
    bad = WhatsAppSettings(base_url=settings.base_url, access_token="wrong", waba_id=settings.waba_id)
    with WhatsAppClient(bad) as c, pytest.raises(WhatsAppError) as info:
        c.health()
    assert info.value.code == 190 and info.value.error_class is ErrorClass.AUTH and info.value.details == ""


def test_unknown_code_is_classified_by_is_transient_before_http_status():
    from include.whatsapp.client import _error_from_payload

    assert classify(999999, 400, is_transient=True) is ErrorClass.TRANSIENT
    err = _error_from_payload(400, b'{"error":{"message":"x","code":999999,"is_transient":true,"error_subcode":7}}')
    assert err.retryable and err.error_subcode == 7 and err.is_transient is True
    # a known code keeps its class whatever is_transient or the status say
    err = _error_from_payload(503, b'{"error":{"message":"x","code":131026,"is_transient":true}}')
    assert err.error_class is ErrorClass.PERMANENT_RECIPIENT


def test_refresh_numbers_stores_the_mapped_tier(app_db, sandbox, settings):
    from include.delivery import numbers
    from tests.world import seed

    seed(app_db, advisors=5)
    sandbox.configure(messaging_tier="TIER_10K")
    with WhatsAppClient(settings) as c:
        fresh = numbers.refresh_numbers(app_db, c)
    assert fresh and {n.messaging_tier for n in fresh} == {"TIER_10K"} and not any(n.error for n in fresh)
    sandbox.configure(messaging_tier="TIER_NOT_SET")
    with WhatsAppClient(settings) as c:
        assert {n.messaging_tier for n in numbers.refresh_numbers(app_db, c)} == {"UNKNOWN"}
    assert {n.messaging_tier for n in numbers.active_numbers(app_db)} == {"UNKNOWN"}


def test_bulk_send_on_the_wire_is_json_with_the_token_and_never_carries_cookies():
    """What the sender's client puts on the wire, read by a raw loopback server: the documented JSON body as
    application/json with the bearer token, and no Cookie header even after the server set one (the Graph API
    authenticates with the token; the client keeps no cookie jar)."""
    import json

    seen: list[tuple[dict, bytes]] = []
    ok = b'{"messaging_product":"whatsapp","contacts":[{"input":"+919812345678","wa_id":"919812345678"}],' \
         b'"messages":[{"id":"wamid.X"}]}'

    async def handle(reader, writer):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            body = await reader.readexactly(int(headers["content-length"]))
            seen.append((headers, body))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: fr=abc; Path=/\r\n"
                         b"Content-Length: " + str(len(ok)).encode() + b"\r\n\r\n" + ok)
            await writer.drain()

    async def go():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        # A host name, not an IP literal: aiohttp's default cookie jar ignores cookies set by IP addresses.
        settings = WhatsAppSettings(base_url=f"http://localhost:{port}", access_token="tok-1",
                                    waba_id="200000000000001")
        async with AsyncWhatsAppClient(settings) as c:
            for _ in range(2):
                res = await c.send_template(PNID, "+919812345678", "daily_pack_v1", "en", PARAMS,
                                            image_link="https://cdn.example/x.png", biz_opaque_callback_data="k1")
                assert res.wamid == "wamid.X"
        server.close()

    asyncio.run(go())
    assert len(seen) == 2
    for headers, body in seen:
        assert headers["content-type"] == "application/json"
        assert headers["authorization"] == "Bearer tok-1"
        assert "cookie" not in headers
        assert json.loads(body) == build_template_message("+919812345678", "daily_pack_v1", "en", PARAMS,
                                                          image_link="https://cdn.example/x.png",
                                                          biz_opaque_callback_data="k1")
