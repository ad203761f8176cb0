"""The delivery cockpit as the api-server serves it: Airflow's real FastAPI app (create_app(apps="core")) loads
plugins/delivery_cockpit.py and mounts it at /cockpit, under uvicorn, with the SimpleAuthManager and two users:
admin (may trigger the ops DAGs) and viewer (read-only). Every route needs a login; pause/resume need the right to
trigger ops_pause_sending / ops_resume_sending; the report's files are served and nothing else is."""
from __future__ import annotations

import contextlib
import datetime as dt
import json

import httpx
import pytest
import sqlalchemy as sa

from tests.world import DAY, planned_world, rows, scalar

pytestmark = pytest.mark.e2e

PASSWORDS = {"admin": "cockpit-admin-password", "viewer": "cockpit-viewer-password"}
ACTION = {"X-Cockpit-Action": "1"}


@contextlib.contextmanager
def running_api_server(tmp_path, monkeypatch):
    """The api-server with the cockpit's two users, and the report files under this test's folder."""
    from tests.support import running_api_server as serve

    monkeypatch.setenv("FA_DATA_ROOT_URL", f"file://{tmp_path / 'objects'}")
    with serve(tmp_path, monkeypatch, {"admin": ("admin", PASSWORDS["admin"]),
                                       "viewer": ("viewer", PASSWORDS["viewer"])}) as url:
        yield url


@pytest.fixture
def api_server(app_db, airflow_db, sandbox, tmp_path, monkeypatch):
    with running_api_server(tmp_path, monkeypatch) as url:
        yield url


def token(api_server: str, user: str) -> str:
    r = httpx.post(f"{api_server}/auth/token", json={"username": user, "password": PASSWORDS[user]})
    assert r.status_code == 201, r.text
    return r.json()["access_token"]


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def test_every_route_needs_an_airflow_login(api_server, app_db):
    c = f"{api_server}/cockpit"
    gets = [f"{c}/", f"{c}/api/snapshot", f"{c}/reports/{DAY}/daily-report.html"]
    posts = [f"{c}/api/sending/pause", f"{c}/api/sending/resume"]
    for url in gets:
        assert httpx.get(url).status_code == 401, url
        assert httpx.get(url, headers=bearer("not-a-jwt")).status_code == 403, url
        assert httpx.get(url, cookies={"_token": "not-a-jwt"}).status_code == 403, url
    for url in posts:
        assert httpx.post(url, json={"reason": "x"}, headers=ACTION).status_code == 401, url
        assert httpx.post(url, json={"reason": "x"}, headers={**ACTION, **bearer("bad")}).status_code == 403, url
    assert scalar(app_db, "SELECT count(*) FROM audit_log") == 0
    # The UI's session cookie is accepted like a bearer token (the page's own fetches rely on it).
    tok = token(api_server, "viewer")
    assert httpx.get(f"{c}/api/snapshot", cookies={"_token": tok}).status_code == 200


def test_the_ui_lists_the_cockpit_in_its_navigation(api_server):
    r = httpx.get(f"{api_server}/api/v2/plugins", headers=bearer(token(api_server, "admin")))
    assert r.status_code == 200, r.text
    ours = [p for p in r.json()["plugins"] if p["name"] == "delivery_cockpit"]
    assert ours, r.json()
    assert ours[0]["fastapi_apps"][0]["url_prefix"] == "/cockpit"
    view = ours[0]["external_views"][0]
    assert (view["href"], view["url_route"], view["destination"]) == ("/cockpit/", "delivery-cockpit", "nav")


def test_a_viewer_reads_but_may_not_pause_or_resume(api_server, app_db, sandbox):
    tok = token(api_server, "viewer")
    page = httpx.get(f"{api_server}/cockpit/", headers=bearer(tok))
    assert page.status_code == 200 and "Delivery cockpit" in page.text and "viewer" in page.text
    for action in ("pause", "resume"):
        r = httpx.post(f"{api_server}/cockpit/api/sending/{action}", json={"reason": "curious"},
                       headers={**ACTION, **bearer(tok)})
        assert r.status_code == 403, r.text
    assert scalar(app_db, "SELECT paused FROM ops_controls WHERE control = 'sending'") is False
    assert scalar(app_db, "SELECT count(*) FROM audit_log") == 0
    assert sandbox.slack_posts() == []


def test_an_admin_pauses_and_resumes_through_the_audited_kill_switch(api_server, app_db, sandbox):
    h = bearer(token(api_server, "admin"))
    base = f"{api_server}/cockpit/api/sending"
    # Refused without a reason, or without the custom header a cross-site form cannot send: nothing changes.
    assert httpx.post(f"{base}/pause", json={"reason": "   "}, headers={**ACTION, **h}).status_code == 422
    assert httpx.post(f"{base}/pause", json={"reason": "x"}, headers=h).status_code == 400
    assert scalar(app_db, "SELECT count(*) FROM audit_log") == 0

    r = httpx.post(f"{base}/pause", json={"reason": "drill: wrong image"}, headers={**ACTION, **h})
    assert r.status_code == 200, r.text
    assert r.json()["paused"] is True and r.json()["changed_by"] == "admin" and r.json()["announced"] is True
    snap = httpx.get(f"{api_server}/cockpit/api/snapshot", headers=h).json()
    assert snap["kill_switch"]["paused"] is True and snap["kill_switch"]["reason"] == "drill: wrong image"
    r = httpx.post(f"{base}/resume", json={"reason": "image fixed"}, headers={**ACTION, **h})
    assert r.status_code == 200 and r.json()["paused"] is False

    audit = rows(app_db, "SELECT actor, action, target, reason, details FROM audit_log ORDER BY audit_id")
    assert [(a.actor, a.action, a.target, a.reason) for a in audit] == [
        ("admin", "pause_sending", "sending", "drill: wrong image"), ("admin", "resume_sending", "sending", "image fixed")]
    assert audit[0].details == {"was_paused": False}
    texts = [json.dumps(p) for p in sandbox.slack_posts()]
    assert any("PAUSED by admin" in t and "drill: wrong image" in t for t in texts), texts
    assert any("resumed by admin" in t and "image fixed" in t for t in texts), texts


def test_the_snapshot_shows_the_days_checks_runs_progress_numbers_and_trend(api_server, app_db):
    planned = planned_world(app_db, advisors=60, research_digits="")
    with app_db.begin() as c:
        c.execute(sa.text("""
            INSERT INTO check_results (business_date, dag_id, run_id, check_name, severity, ok, summary, items) VALUES
            (:d, 'pre_delivery_check', 'scheduled__1', 'check_templates', 'info', true, 'templates approved', '[]'),
            (:d, 'pre_delivery_check', 'scheduled__1', 'check_whatsapp_numbers', 'P1', false, 'number YELLOW',
             '["+919000000001 YELLOW"]'),
            (:d, 'post_delivery_report', 'scheduled__2', 'sla_0605', 'P2', false, 'accepted 98%', '[]')"""),
                  {"d": DAY})
        c.execute(sa.text("INSERT INTO alerts_raised (business_date, alert_key) VALUES (:d, 'failure_rate:p0')"),
                  {"d": DAY})
    r = httpx.get(f"{api_server}/cockpit/api/snapshot", params={"date": str(DAY)},
                  headers=bearer(token(api_server, "viewer")))
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["business_date"] == str(DAY)
    assert s["totals"]["planned"] == planned and s["totals"]["accepted"] == 0
    assert sum(p["planned"] for p in s["progress"]) == planned
    assert all(p["limit_mps"] for p in s["progress"])
    assert {c["check_name"]: c["severity"] for c in s["checks"]} == {"check_templates": "info",
                                                                     "check_whatsapp_numbers": "P1"}
    assert s["checks_worst_severity"] == "P1" and s["findings_worst_severity"] == "P1"
    runs = {r["dag_id"]: r for r in s["runs"]}
    assert (runs["pre_delivery_check"]["worst_severity"], runs["pre_delivery_check"]["summary"]) == ("P1",
                                                                                                     "number YELLOW")
    assert runs["post_delivery_report"]["worst_severity"] == "P2"
    assert s["links"]["runs"]["pre_delivery_check/scheduled__1"] == "/dags/pre_delivery_check/runs/scheduled__1"
    assert any(d["href"].startswith("/dags/delivery_fanout/runs?run_after_gte=") for d in s["links"]["dags"])
    assert [a["alert_key"] for a in s["alerts"]] == ["failure_rate:p0"]
    assert s["numbers"] and s["templates"]
    assert s["trend"][-1]["business_date"] == str(DAY) and s["trend"][-1]["planned"] == planned
    assert s["report"]["href"] == f"/cockpit/reports/{DAY}/daily-report.html" and s["report"]["exists"] is False
    # Default date: today in IST; a malformed date is refused.
    from include.core.dates import ist_today

    h = bearer(token(api_server, "viewer"))
    assert httpx.get(f"{api_server}/cockpit/api/snapshot", headers=h).json()["business_date"] == str(ist_today())
    for bad in ("2026-13-01", "yesterday", "2026-11-23T00:00"):
        assert httpx.get(f"{api_server}/cockpit/api/snapshot", params={"date": bad}, headers=h).status_code == 422


def test_the_reports_own_files_are_served_and_nothing_else(api_server, tmp_path):
    from include.reporting import daily_report

    uris = daily_report.write(DAY, {"daily-report.html": "<h1>report of the day</h1>", "outcomes.csv": "a,b\n1,2\n",
                                    "kpis.json": "{}", "data-quality.json": "{}"})
    folder = tmp_path / "objects" / "reports" / str(DAY)
    assert uris["daily-report.html"].endswith(f"reports/{DAY}/daily-report.html") and folder.is_dir()
    (folder / "notes.txt").write_text("not a report file")
    (tmp_path / "objects" / "secret.json").write_text('{"secret": "s3cr3t"}')
    h = bearer(token(api_server, "viewer"))
    c = f"{api_server}/cockpit/reports"

    r = httpx.get(f"{c}/{DAY}/daily-report.html", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.text == "<h1>report of the day</h1>"
    r = httpx.get(f"{c}/{DAY}/outcomes.csv", headers=h)
    assert r.status_code == 200 and r.text == "a,b\n1,2\n" and "attachment" in r.headers["content-disposition"]
    assert httpx.get(f"{c}/{DAY - dt.timedelta(days=1)}/daily-report.html", headers=h).status_code == 404

    with httpx.Client(headers=h) as client:
        for raw in (f"/cockpit/reports/{DAY}/notes.txt",
                    f"/cockpit/reports/{DAY}/..%2F..%2Fsecret.json",
                    f"/cockpit/reports/{DAY}/%2e%2e%2f%2e%2e%2fsecret.json",
                    f"/cockpit/reports/{DAY}/../../secret.json",
                    "/cockpit/reports/..%2F..%2Fsecret.json/daily-report.html",
                    "/cockpit/reports/../secret.json",
                    f"/cockpit/reports/{DAY}%2F..%2F..%2F/secret.json",
                    "/cockpit/reports/2026-11-23x/daily-report.html"):
            # Sent byte for byte (no client-side normalisation of the dots).
            req = client.build_request("GET", api_server)
            req.url = req.url.copy_with(raw_path=raw.encode())
            resp = client.send(req)
            assert resp.status_code in (404, 422), (raw, resp.status_code)
            assert "s3cr3t" not in resp.text and "not a report file" not in resp.text, raw
