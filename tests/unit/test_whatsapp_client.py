"""Contract tests of the WhatsApp client against the sandbox over real HTTP: one per error class."""
import asyncio

import pytest

from include.whatsapp import (
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


def send(settings, to="+919812345678", template="daily_pack_v1", params=PARAMS, pnid=PNID, key=None, **kw):
    async def go():
        async with AsyncWhatsAppClient(settings) as c:
            return await c.send_template(pnid, to, template, "en", params, image_link="https://cdn.example/x.png",
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
    assert err.retryable and err.http_status == 429


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
        assert num["messaging_limit_tier"].startswith("TIER_") and num["status"] == "CONNECTED"
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
