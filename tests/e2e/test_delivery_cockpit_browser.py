"""The delivery cockpit in a real browser: Debian's headless Chromium driven by Playwright against Airflow's real
api-server app (the plugin mounted at /cockpit, SimpleAuthManager). An operator signs in through the UI's login form,
opens the cockpit from the UI's navigation, watches a fan-out (senders in threads against the sandbox) make progress,
pauses it with a reason (sending stops, the audit log and Slack show who and why), then resumes it; the run ends with
nobody sent twice and nobody lost. The page's own fetches ride on the UI's `_token` cookie. Saves docs/cockpit.png.

Chromium comes from Debian (`make chromium`, run by `make test`); its absence fails this test, never skips it."""
from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.core.dates import ist_today
from tests.e2e.test_delivery_cockpit_api import PASSWORDS, running_api_server
from tests.e2e.test_delivery_fanout import _options, _settings, assert_no_duplicates_and_nothing_lost
from tests.world import planned_world, rows, scalar

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "cockpit.png"
TODAY = ist_today()


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    """Poll `condition` until it returns a truthy value (returned) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def chromium_path() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        pytest.fail(f"Debian's chromium is not installed ({CHROMIUM} missing): run `make chromium` "
                    "(apt-get install -y chromium); `make test` does this itself. Playwright's own browser download "
                    "is not used.")
    return path


def seed_morning(engine) -> int:
    """Today's plan (jitter spread over ~25 s so the run can be watched) and the 05:50 check's results."""
    planned = planned_world(engine, advisors=400, research_digits="", day=TODAY)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE delivery_plan SET jitter_ms = (advisor_id * 7919) % 25000"))
        for name, severity, ok, summary, items in [
            ("check_system_health", "info", True, "DB 4 ms, pool 2/15, storage writable, token valid", []),
            ("check_whatsapp_numbers", "info", True, "4 primary numbers GREEN, hot spare ready", []),
            ("check_templates", "P2", False, "daily_pack_hi_v1 quality UNKNOWN (new)", ["daily_pack_hi_v1 hi"]),
            ("check_content_ready", "info", True, "every advisor has a QC-passed render", []),
            ("prepare_delivery_queue", "info", True, f"{planned} advisors planned over 4 shards", []),
        ]:
            c.execute(sa.text("INSERT INTO check_results (business_date, dag_id, run_id, check_name, severity, ok, "
                              "summary, items) VALUES (:d, 'pre_delivery_check', :run, :n, :s, :ok, :sum, "
                              "CAST(:items AS jsonb))"),
                      {"d": TODAY, "run": f"scheduled__{TODAY}T00:20:00+00:00", "n": name, "s": severity, "ok": ok,
                       "sum": summary, "items": json.dumps(items)})
    return planned


def start_fanout(engine, sandbox) -> tuple[threading.Thread, list]:
    """Every sender unit of today in its own thread, as the mapped send_shard tasks run them."""
    from include.delivery.fanout import enqueue, send_unit, units_for

    enqueue(engine, TODAY)
    units = units_for(engine, TODAY)
    results, errors = [], []

    def one(unit):
        try:
            results.append(send_unit(engine, _settings(sandbox), unit, _options(sandbox)))
        except Exception as exc:  # noqa: BLE001 - surfaced by the test, not lost in a thread
            errors.append(exc)

    def run_all():
        threads = [threading.Thread(target=one, args=(u,)) for u in units]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    runner = threading.Thread(target=run_all, daemon=True)
    runner.start()
    return runner, errors


def kpi(frame, name: str) -> int:
    text = frame.locator(f'[data-kpi="{name}"] b').inner_text(timeout=5000)
    return int(re.sub(r"[^0-9]", "", text) or 0)


def refreshed(frame) -> str | None:
    return frame.locator("body").get_attribute("data-refreshed", timeout=5000)


def quiet_count(sandbox, seconds: float, timeout: float) -> int:
    """The sandbox ledger's accepted count once it has not moved for `seconds` (in-flight requests land first)."""
    deadline = time.monotonic() + timeout
    last, since = sandbox.ledger_stats()["accepted"], time.monotonic()
    while time.monotonic() - since < seconds:
        assert time.monotonic() < deadline, "sending did not stop after the pause"
        time.sleep(0.05)
        now = sandbox.ledger_stats()["accepted"]
        if now != last:
            last, since = now, time.monotonic()
    return last


def flip_switch(frame, button: str, reason: str, expected_state: str) -> None:
    from playwright.sync_api import expect

    frame.locator(button).click()
    expect(frame.locator("#reason-dialog")).to_be_visible()
    frame.locator("#reason").fill(reason)
    frame.locator("#reason-ok").click()
    expect(frame.locator("#switch-state")).to_have_text(expected_state, timeout=10_000)


def test_an_operator_watches_pauses_and_resumes_the_fanout_in_the_browser(app_db, airflow_db, sandbox, tmp_path,
                                                                          monkeypatch):
    executable = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    planned = seed_morning(app_db)
    with running_api_server(tmp_path, monkeypatch) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        console_errors: list[str] = []
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

        # Sign in through the UI's own login form; it stores the JWT as the `_token` cookie.
        page.goto(f"{base}/auth/login?next=/")
        page.locator("input[name=username]").fill("admin")
        page.locator("input[type=password]").fill(PASSWORDS["admin"])
        page.get_by_role("button", name="Sign in").click()
        wait_until(lambda: any(c["name"] == "_token" for c in context.cookies()), 20, "the UI's _token cookie")
        page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"), timeout=60_000)

        # The cockpit is in the UI's navigation and opens inside the UI (an iframe of /cockpit/).
        page.get_by_role("link", name="Delivery cockpit").first.click()
        # 60 s: with the stack tests on the other pytest worker, the UI's single api-server worker can lag (20 s
        # timed out once in CI; alone this navigation takes well under a second).
        page.wait_for_url(re.compile(r".*/plugin/delivery-cockpit$"), timeout=60_000)
        frame = page.frame_locator("iframe").first
        expect(frame.locator("#switch-state")).to_have_text("SENDING ENABLED", timeout=20_000)
        expect(frame.locator("#user")).to_have_text("admin")
        # Opening the cockpit made IST the Airflow UI's time zone for this browser (the operator had chosen none).
        assert page.evaluate("localStorage.getItem('timezone')") == '"Asia/Kolkata"'
        assert (kpi(frame, "planned"), kpi(frame, "accepted")) == (planned, 0)

        # Live: the accepted count moves between two refreshes of the page's JSON poll (cookie auth, same origin).
        runner, errors = start_fanout(app_db, sandbox)
        first = wait_until(lambda: (refreshed(frame), kpi(frame, "accepted")) if kpi(frame, "accepted") > 0 else None,
                           30, "a refresh showing accepted > 0")
        second = wait_until(lambda: (refreshed(frame), kpi(frame, "accepted"))
                            if refreshed(frame) != first[0] and kpi(frame, "accepted") > first[1] else None,
                            30, "a later refresh with more accepted")
        assert second[1] > first[1]

        # Pause with a reason: sending stops, the page shows it, audited and announced.
        flip_switch(frame, "#pause-btn", "drill: wrong chart in today's pack", "SENDING PAUSED")
        paused_at = time.monotonic()
        stopped = quiet_count(sandbox, seconds=0.5, timeout=5)
        assert time.monotonic() - paused_at <= 5
        held_until = time.monotonic() + 2.0
        while time.monotonic() < held_until:  # held: nothing is sent while the switch is on
            assert sandbox.ledger_stats()["accepted"] == stopped, "a message was sent while paused"
            time.sleep(0.1)
        assert stopped < planned, "the run finished before the pause: nothing left to hold"
        assert runner.is_alive()
        # The page's count catches up with what was accepted and stays there.
        wait_until(lambda: kpi(frame, "accepted") == scalar(
            app_db, "SELECT count(*) FROM deliveries WHERE status IN ('accepted','sent','delivered','read')"),
                   15, "the page to show the accepted count at the pause")
        expect(frame.locator("#switch-detail")).to_contain_text("paused by admin")
        expect(frame.locator("#switch-detail")).to_contain_text("drill: wrong chart in today's pack")
        expect(frame.locator("#resume-btn")).to_be_enabled()
        expect(frame.locator("#pause-btn")).to_be_disabled()
        audit = rows(app_db, "SELECT actor, action, reason FROM audit_log ORDER BY audit_id")
        assert [tuple(a) for a in audit] == [("admin", "pause_sending", "drill: wrong chart in today's pack")]
        posts = wait_until(lambda: [p for p in sandbox.slack_posts() if "PAUSED by admin" in json.dumps(p)], 10,
                           "the pause's Slack post")
        assert "drill: wrong chart in today's pack" in json.dumps(posts[0])

        # The screenshot: the cockpit on its own page (same cookie), paused mid-run.
        shot = context.new_page()
        shot.set_viewport_size({"width": 1440, "height": 900})
        shot.goto(f"{base}/cockpit/")
        expect(shot.locator("#switch-state")).to_have_text("SENDING PAUSED", timeout=10_000)
        wait_until(lambda: shot.locator("body").get_attribute("data-refreshed"), 10, "the screenshot page's refresh")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shot.screenshot(path=str(SCREENSHOT), full_page=True)
        shot.close()

        # Resume the same way; the run finishes.
        flip_switch(frame, "#resume-btn", "drill over, pack verified", "SENDING ENABLED")
        runner.join(180)
        assert not runner.is_alive() and not errors, errors
        wait_until(lambda: kpi(frame, "accepted") == planned, 15, "the page to show every advisor accepted")
        assert [tuple(a)[1:] for a in rows(app_db, "SELECT actor, action, reason FROM audit_log ORDER BY audit_id")] \
            == [("pause_sending", "drill: wrong chart in today's pack"), ("resume_sending", "drill over, pack verified")]
        assert any("resumed by admin" in json.dumps(p) for p in sandbox.slack_posts())
        assert not [e for e in console_errors if "cockpit" in e.lower()], console_errors
        browser.close()

    assert_no_duplicates_and_nothing_lost(app_db, sandbox)
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'accepted'") == planned
