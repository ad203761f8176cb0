"""Contract tests: the real sandbox, over HTTP, serves the Graph API shapes Meta documents.

Each test makes one request against the sandbox (`sandbox` fixture: the server process `make sandbox` runs) and
compares the exact JSON and HTTP status with a fixture in fixtures/ written from Meta's documentation or a public
reference payload (its `_source`); see graph_shapes.py for the comparison rules.
"""
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.contract.graph_shapes import assert_same_shape, load
from tests.support import TEST_TOKEN

PNID = "100000000000001"
WABA = "200000000000001"
AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def graph(sandbox, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(method, f"{sandbox.url}/v21.0/{path}", headers=kw.pop("headers", AUTH), timeout=10, **kw)


def check(resp: httpx.Response, fixture_name: str) -> dict:
    fixture = load(fixture_name)
    assert resp.status_code == fixture["_http_status"], resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert_same_shape(resp.json(), fixture)
    return resp.json()


def template_send(to="+16505551234", template="daily_pack_v1", params=("Asha", "View", "Disclaimer"),
                  header=None, upper=False):
    header = header or {"link": "https://cdn.example/a.png"}
    h, b = ("HEADER", "BODY") if upper else ("header", "body")
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "template",
            "template": {"name": template, "language": {"code": "en"}, "components": [
                {"type": h, "parameters": [{"type": "image", "image": header}]},
                {"type": b, "parameters": [{"type": "text", "text": p} for p in params]}]}}


# ---------------------------------------------------------------- template sends
@pytest.mark.parametrize("upper", [False, True], ids=["lowercase-types", "uppercase-types"])
def test_send_response_carries_message_status_accepted(sandbox, upper):
    check(graph(sandbox, "POST", f"{PNID}/messages", json=template_send(upper=upper)), "send_template_accepted.json")


def test_send_held_under_template_pacing(sandbox):
    sandbox.faults(pacing_rate=1.0, pacing_templates=["daily_pack_v1"])
    check(graph(sandbox, "POST", f"{PNID}/messages", json=template_send()), "send_template_held.json")
    # other templates are not paced
    other = graph(sandbox, "POST", f"{PNID}/messages", json=template_send(to="+16505551235", template="daily_pack_v2"))
    assert other.json()["messages"][0]["message_status"] == "accepted"


def test_send_with_header_image_by_uploaded_media_id(sandbox):
    media_id = check(graph(sandbox, "POST", f"{PNID}/media", data={"messaging_product": "whatsapp",
                                                                   "type": "image/png"},
                           files={"file": ("a.png", PNG, "image/png")}), "media_upload.json")["id"]
    check(graph(sandbox, "POST", f"{PNID}/messages", json=template_send(header={"id": media_id})),
          "send_template_accepted.json")


def test_send_with_unknown_media_id_is_131009(sandbox):
    check(graph(sandbox, "POST", f"{PNID}/messages", json=template_send(header={"id": "987654321"})),
          "error_unknown_media_131009.json")


# ---------------------------------------------------------------- phone number and WABA
def test_phone_number_messaging_limit_field(sandbox):
    sandbox.configure(messaging_tier="TIER_250")
    got = check(graph(sandbox, "GET", PNID, params={"fields": "whatsapp_business_manager_messaging_limit"}),
                "phone_number_messaging_limit.json")
    assert got["id"] == PNID


def test_phone_number_fields_the_client_asks_for(sandbox):
    from include.whatsapp.client import PHONE_NUMBER_FIELDS

    sandbox.configure(messaging_tier="TIER_250")
    check(graph(sandbox, "GET", PNID, params={"fields": ",".join(PHONE_NUMBER_FIELDS)}),
          "phone_number_client_fields.json")


def test_phone_number_default_fields_have_no_deprecated_tier(sandbox):
    got = check(graph(sandbox, "GET", PNID), "phone_number_default_fields.json")
    assert "messaging_limit_tier" not in got


def test_deprecated_messaging_limit_tier_only_when_named(sandbox):
    sandbox.configure(messaging_tier="TIER_250")
    check(graph(sandbox, "GET", PNID, params={"fields": "messaging_limit_tier"}), "phone_number_deprecated_tier.json")


def test_unknown_field_is_error_100(sandbox):
    check(graph(sandbox, "GET", PNID, params={"fields": "quality_rating,no_such_field"}),
          "error_unknown_field_100.json")


def test_unknown_object_is_graph_method_exception(sandbox):
    check(graph(sandbox, "GET", "999999"), "error_unknown_object_100.json")


def test_waba_default_and_requested_fields(sandbox):
    check(graph(sandbox, "GET", WABA), "waba_default_fields.json")
    check(graph(sandbox, "GET", WABA, params={"fields": "id,name"}), "waba_fields_id_name.json")


# ---------------------------------------------------------------- template list
def test_template_list_default_fields(sandbox):
    check(graph(sandbox, "GET", f"{WABA}/message_templates", params={"limit": 2}),
          "templates_page_default_fields.json")


def test_template_list_requested_fields(sandbox):
    check(graph(sandbox, "GET", f"{WABA}/message_templates", params={"fields": "name,category,status", "limit": 2}),
          "templates_page_requested_fields.json")


def test_template_list_client_fields(sandbox):
    from include.whatsapp.client import TEMPLATE_FIELDS

    got = check(graph(sandbox, "GET", f"{WABA}/message_templates",
                      params={"fields": ",".join(TEMPLATE_FIELDS), "limit": 1}), "templates_page_client_fields.json")
    assert got["data"][0]["quality_score"]["score"] in ("GREEN", "YELLOW", "RED", "UNKNOWN")


def test_template_list_summary(sandbox):
    got = check(graph(sandbox, "GET", f"{WABA}/message_templates",
                      params={"fields": "name", "limit": 2, "summary": "true"}), "templates_page_summary.json")
    # the seeded WABA: 5 templates, 5 names, en and hi not both present for every name
    assert got["summary"] == {"total_count": 5, "message_template_count": 5, "message_template_limit": 250,
                              "are_translations_complete": False}
    only = graph(sandbox, "GET", f"{WABA}/message_templates", params={"limit": 1, "summary": "total_count"}).json()
    assert only["summary"] == {"total_count": 5}


def _query(link: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}


def test_paging_next_and_previous_keep_the_query(sandbox):
    q = {"fields": "name,status", "limit": "2", "summary": "true"}
    first = graph(sandbox, "GET", f"{WABA}/message_templates", params=q).json()
    assert "previous" not in first["paging"]
    nxt = _query(first["paging"]["next"])
    assert {k: nxt[k] for k in q} == q and nxt["after"] == first["paging"]["cursors"]["after"]
    assert urlsplit(first["paging"]["next"]).path == f"/v21.0/{WABA}/message_templates"

    second = httpx.get(first["paging"]["next"], headers=AUTH).json()
    assert set(second) == {"data", "paging", "summary"} and len(second["data"]) == 2
    prev = _query(second["paging"]["previous"])
    assert {k: prev[k] for k in q} == q and prev["before"] == second["paging"]["cursors"]["before"]
    assert "after" not in prev

    back = httpx.get(second["paging"]["previous"], headers=AUTH).json()
    assert [t["name"] for t in back["data"]] == [t["name"] for t in first["data"]]

    third = httpx.get(second["paging"]["next"], headers=AUTH).json()
    assert len(third["data"]) == 1 and "next" not in third["paging"] and "previous" in third["paging"]
    names = [t["name"] for page in (first, second, third) for t in page["data"]]
    assert len(names) == len(set(names)) == 5


def test_bad_cursor_and_limit_are_error_100(sandbox):
    for params in ({"after": "not-a-cursor"}, {"limit": "zero"}):
        r = graph(sandbox, "GET", f"{WABA}/message_templates", params=params)
        assert r.status_code == 400 and r.json()["error"]["code"] == 100


# ---------------------------------------------------------------- errors
def test_throughput_error_130429(sandbox):
    sandbox.faults(storm_rate=1.0, storm_for_s=30)
    check(graph(sandbox, "POST", f"{PNID}/messages", json=template_send()), "error_throughput_130429.json")


def test_pair_rate_error_131056(sandbox):
    sandbox.configure(pair_burst=1)
    graph(sandbox, "POST", f"{PNID}/messages", json=template_send())
    check(graph(sandbox, "POST", f"{PNID}/messages", json=template_send()), "error_pair_rate_131056.json")


def test_param_count_error_132000(sandbox):
    check(graph(sandbox, "POST", f"{PNID}/messages", json=template_send(params=("only one",))),
          "error_param_count_132000.json")


def test_token_errors_190(sandbox):
    check(graph(sandbox, "GET", PNID, headers={"Authorization": "Bearer nope"}), "error_token_invalid_190.json")
    sandbox.faults(token_expires_in_s=0)
    check(graph(sandbox, "POST", f"{PNID}/messages", json=template_send()), "error_token_expired_190.json")


def test_template_exists_error_carries_user_title_message_and_is_transient(sandbox):
    r = graph(sandbox, "POST", f"{WABA}/message_templates",
              json={"name": "daily_pack_v1", "language": "en", "category": "MARKETING",
                    "components": [{"type": "BODY", "text": "Hi {{1}}"}]})
    check(r, "error_template_exists.json")


# ---------------------------------------------------------------- media
def test_media_upload_get_download_delete(sandbox):
    media_id = check(graph(sandbox, "POST", f"{PNID}/media", data={"messaging_product": "whatsapp", "type": "image/jpeg"},
                           files={"file": ("a.jpg", JPEG, "image/jpeg")}), "media_upload.json")["id"]
    info = check(graph(sandbox, "GET", media_id), "media_get.json")
    assert info["id"] == media_id and info["file_size"] == str(len(JPEG))
    assert graph(sandbox, "GET", media_id, params={"phone_number_id": "100000000000002"}).status_code == 400
    blob = httpx.get(info["url"], headers=AUTH)
    assert blob.status_code == 200 and blob.content == JPEG and blob.headers["content-type"] == "image/jpeg"
    assert httpx.get(info["url"]).status_code == 401  # the download needs the token, as Meta's does
    check(graph(sandbox, "DELETE", media_id), "media_delete.json")
    assert graph(sandbox, "GET", media_id).json()["error"]["code"] == 100


@pytest.mark.parametrize("mime,content", [
    ("image/gif", b"GIF89a" + b"\x00" * 16),                          # not a supported type
    ("image/jpeg", b"\xff\xd8\xff" + b"\x00" * (5 * 1024 * 1024)),    # over 5 MB
    ("image/png", JPEG),                                              # content does not match the type
])
def test_media_upload_rejections_are_131053(sandbox, mime, content):
    check(graph(sandbox, "POST", f"{PNID}/media", data={"messaging_product": "whatsapp", "type": mime},
                files={"file": ("f", content, mime)}), "error_media_upload_131053.json")


def test_media_upload_requires_messaging_product_and_file(sandbox):
    r = graph(sandbox, "POST", f"{PNID}/media", data={"type": "image/png"}, files={"file": ("a.png", PNG, "image/png")})
    assert r.status_code == 400 and r.json()["error"]["code"] == 131008
    r = graph(sandbox, "POST", f"{PNID}/media", data={"messaging_product": "whatsapp", "type": "image/png"})
    assert r.status_code == 400 and r.json()["error"]["code"] == 131008


def test_debug_token_shape_and_expiry(sandbox):
    """What the 05:50 check reads: is_valid and expires_at (0 = never; a set expiry as a unix time)."""
    url = f"{sandbox.url}/v21.0/debug_token"
    body = httpx.get(url, params={"input_token": TEST_TOKEN}, headers=AUTH).json()
    assert_same_shape(body, load("graph_debug_token.json"))
    assert body["data"]["is_valid"] is True and body["data"]["expires_at"] == 0
    sandbox.faults(token_expires_in_s=3 * 86400)
    data = httpx.get(url, params={"input_token": TEST_TOKEN}, headers=AUTH).json()["data"]
    assert data["is_valid"] is True and data["expires_at"] > 0
    assert httpx.get(url, headers=AUTH).json()["error"]["code"] == 100  # input_token is required


def test_the_client_reads_the_token_expiry(sandbox):
    import datetime as dt

    from include.whatsapp.client import WhatsAppClient, WhatsAppSettings

    settings = WhatsAppSettings(base_url=sandbox.url, access_token=TEST_TOKEN, waba_id="200000000000001")
    with WhatsAppClient(settings) as client:
        assert client.debug_token().expires_at is None  # a system-user token never expires
        sandbox.faults(token_expires_in_s=2 * 86400)
        info = client.debug_token()
    assert info.is_valid and 1.9 < info.days_left(dt.datetime.now(dt.UTC)) <= 2.0
