"""Quality drop to YELLOW, then RED mid-week: the cooldown, the ramp over simulated days with the hot spare
carrying the overflow, the sandbox ledger as referee of per-number volumes, canary and re-sends held on the
dropped number, the backup template, the content review and the audited operator override (issue 18 §1)."""
import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.world import DAY, make_ready, rows, scalar, seed

pytestmark = pytest.mark.e2e
DROPPED, SPARE = "100000000000002", "100000000000005"


def _client():
    from include.whatsapp.client import WhatsAppHook

    return WhatsAppHook().get_conn()


def _morning(engine, day):
    """The 05:50 check's steps for a simulated business date, in the DAG's order (plain functions)."""
    from include.delivery import pre_delivery_check as pdc

    if day == DAY:
        from include.content import readiness as content

        content.assign_content(engine, DAY)
    with engine.begin() as c:  # the day's content: the same packs as DAY, as the nightly window would assign
        c.execute(sa.text("INSERT INTO pack_assignments (business_date, advisor_id, pack_id, render_id, source, reason)"
                          " SELECT :d, advisor_id, pack_id, render_id, source, reason FROM pack_assignments"
                          " WHERE business_date = :base ON CONFLICT DO NOTHING"), {"d": day, "base": DAY})
    with _client() as client:
        numbers = pdc.whatsapp_numbers(engine, client, day, "tests")
        ramps = pdc.number_ramps(engine, client, day, "tests")
        templates, chosen = pdc.template_check(engine, client)
    queue = pdc.prepare_queue(engine, day, chosen, 30)
    per_number = dict(rows(engine, "SELECT phone_number_id, count(*) FROM delivery_plan WHERE business_date = :d "
                                   "GROUP BY 1", d=day))
    return {"numbers": numbers, "ramps": ramps, "templates": templates, "chosen": chosen, "queue": queue,
            "plan": per_number}


def _send(engine, sandbox, day):
    from include.delivery.fanout import SenderOptions, prepare_fanout, send_unit
    from include.whatsapp.client import WhatsAppSettings
    from tests.support import TEST_TOKEN

    settings = WhatsAppSettings(base_url=sandbox.url, access_token=TEST_TOKEN, waba_id="200000000000001")
    for unit in prepare_fanout(engine, day):
        send_unit(engine, settings, unit, SenderOptions(jitter_honoured=False))


def _ledger_by_number(sandbox) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in sandbox.ledger(limit=100000):
        out[e["phone_number_id"]] = out.get(e["phone_number_id"], 0) + 1
    return out


def _quality(sandbox, rating):
    sandbox.admin.post(f"/_sandbox/numbers/{DROPPED}", json={"quality_rating": rating}).raise_for_status()


@pytest.fixture(scope="module")
def override_dag():
    from tests.support import load_dag

    return load_dag("ops_override_number_ramp")


def test_yellow_then_red_midweek_ramps_back_with_the_spare_carrying_the_overflow(
        app_db, sandbox, airflow_db, override_dag, monkeypatch):
    from include.content.canary import run_canary
    from include.operations.actions import retry_failed_deliveries
    from include.whatsapp.client import WhatsAppSettings
    from tests.support import TEST_TOKEN

    seed(app_db, advisors=200)
    make_ready(app_db)
    mon = _morning(app_db, DAY)
    assert mon["ramps"].ok and mon["ramps"].summary == "no number in quality cooldown"
    assert set(mon["plan"].values()) <= {49, 50} and len(mon["plan"]) == 4 and SPARE not in mon["plan"]
    _send(app_db, sandbox, DAY)  # Monday goes out normally: what the content review will show
    share = mon["plan"][DROPPED]

    # Tuesday: YELLOW. Cooldown at 0%, the spare covers on an overflow shard, backup template, review written.
    _quality(sandbox, "YELLOW")
    tue = _morning(app_db, DAY + dt.timedelta(days=1))
    assert tue["ramps"].severity == "P1" and "cooldown at 0%" in str(tue["ramps"].items)
    assert tue["plan"].get(DROPPED, 0) == 0 and tue["plan"][SPARE] == share
    spare = rows(app_db, "SELECT role, shard FROM sending_numbers WHERE phone_number_id = :n", n=SPARE)[0]
    assert (spare.role, spare.shard) == ("primary", 101)
    assert tue["chosen"]["en"] == "daily_pack_v2"
    assert "held back during the quality cooldown" in str(tue["templates"].items)
    report = scalar(app_db, "SELECT content_report_uri FROM number_ramps WHERE phone_number_id = :n", n=DROPPED)
    html = Path(report.removeprefix("file://")).read_text()
    review = json.loads(Path(report.removeprefix("file://").replace(".html", ".json")).read_text())
    assert review["packs"] and review["packs"][0]["business_date"] == str(DAY)
    assert sum(p["messages"] for p in review["packs"]) == share and "Compliance findings" in html

    # Non-critical sends are held on the dropped number: a re-send of Monday's failure on it, and the canary.
    with app_db.begin() as c:
        c.execute(sa.text("UPDATE deliveries SET status = 'failed', error_code = 130429 WHERE delivery_id = "
                          "(SELECT min(delivery_id) FROM deliveries WHERE phone_number_id = :n)"), {"n": DROPPED})
    retried = retry_failed_deliveries(app_db, DAY, "throughput storm over", "tests")
    assert retried["requeued"] == 0 and list(retried["held_by_quality_cooldown"].values()) == [1]
    settings = WhatsAppSettings(base_url=sandbox.url, access_token=TEST_TOKEN, waba_id="200000000000001")
    canary = run_canary(app_db, settings, DAY + dt.timedelta(days=2), phones=("+919900000011", "+919900000012",
                        "+919900000013", "+919900000014", "+919900000015"), wait_s=1)
    assert "canary held (quality cooldown)" in canary.facts
    assert scalar(app_db, "SELECT count(*) FROM canary_sends WHERE shard = 1") == 0
    holds = dict(rows(app_db, "SELECT message_class, count(*) FROM noncritical_send_holds "
                              "WHERE phone_number_id = :n GROUP BY 1", n=DROPPED))
    assert holds == {"resend": 1, "canary": 1}

    # Wednesday: RED during the cooldown: no rotation (the spare already covers), the ramp resets.
    _quality(sandbox, "RED")
    wed = _morning(app_db, DAY + dt.timedelta(days=2))
    assert "RED again during its quality cooldown" in str(wed["numbers"].items)
    assert scalar(app_db, "SELECT active FROM sending_numbers WHERE phone_number_id = :n", n=DROPPED) is True
    assert wed["plan"].get(DROPPED, 0) == 0

    # Thursday GREEN but still in cooldown (48 h from Wednesday 05:50); then one step per GREEN day.
    _quality(sandbox, "GREEN")
    expected = {3: 0, 4: 25, 5: 50}
    before = _ledger_by_number(sandbox)
    for offset, pct in expected.items():
        day = DAY + dt.timedelta(days=offset)
        got = _morning(app_db, day)
        kept = got["plan"].get(DROPPED, 0)
        assert kept == share * pct // 100 and kept + got["plan"][SPARE] == share, (day, got["plan"])
        assert got["queue"].ok, got["queue"].items
        if offset == 4:  # Friday goes out: the sandbox's ledger referees the per-number volumes
            _send(app_db, sandbox, day)
            after = _ledger_by_number(sandbox)
            assert after.get(DROPPED, 0) - before.get(DROPPED, 0) == share * 25 // 100
            assert after[SPARE] - before.get(SPARE, 0) == share - share * 25 // 100
            assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE business_date = :d AND phone_number_id = :n "
                                  "AND status = 'accepted'", d=day, n=DROPPED) == share * 25 // 100
    days = [(r.business_date, r.share_pct) for r in rows(
        app_db, "SELECT business_date, share_pct FROM number_ramp_days ORDER BY business_date")]
    assert [s for _, s in days] == [0, 0, 0, 25, 50]

    # The operator ends the cooldown: audited, the spare steps back, the number carries its whole share.
    state = override_dag.test(run_conf={"number": DROPPED, "share_percent": "end cooldown",
                                        "reason": "complaints cleared with Meta"}).state
    assert state == "success"
    audit = rows(app_db, "SELECT actor, reason, details FROM audit_log WHERE action = 'override_number_ramp'")
    assert len(audit) == 1 and audit[0].reason == "complaints cleared with Meta"
    assert audit[0].details["share_before"] == 50 and audit[0].details["ended"] is True
    assert rows(app_db, "SELECT role, shard FROM sending_numbers WHERE phone_number_id = :n", n=SPARE)[0] \
        == ("hot_spare", None)
    sun = _morning(app_db, DAY + dt.timedelta(days=6))
    assert sun["plan"][DROPPED] == share and SPARE not in sun["plan"] and sun["chosen"]["en"] == "daily_pack_v1"


def test_override_of_a_number_without_cooldown_is_refused(app_db, sandbox, airflow_db, override_dag):
    seed(app_db, advisors=10)
    try:
        state = override_dag.test(run_conf={"number": DROPPED, "share_percent": "50", "reason": "try"}).state
    except Exception as exc:  # noqa: BLE001 - Param validation may reject the conf before the run
        state = f"rejected: {exc}"
    assert state != "success"
    assert scalar(app_db, "SELECT count(*) FROM audit_log WHERE action = 'override_number_ramp'") == 0


def test_no_capacity_for_the_overflow_is_a_p1_not_a_silent_overfill(app_db, sandbox, monkeypatch):
    monkeypatch.setenv("FA_COOLDOWN_NUMBER_DAILY_CAPACITY", "60")
    seed(app_db, advisors=200)
    make_ready(app_db)
    _morning(app_db, DAY)
    _quality(sandbox, "YELLOW")
    got = _morning(app_db, DAY + dt.timedelta(days=1))
    # The spare (capacity 60) takes the whole share.
    assert got["plan"].get(DROPPED, 0) == 0 and got["queue"].ok
    monkeypatch.setenv("FA_COOLDOWN_NUMBER_DAILY_CAPACITY", "20")
    got = _morning(app_db, DAY + dt.timedelta(days=2))
    assert got["queue"].severity == "P1" and "found no capacity" in str(got["queue"].items)
    left = got["plan"][DROPPED]  # its whole share (49 or 50) less the spare's 20: above its 0% ramp, and said so
    assert got["plan"][SPARE] == 20 and left in (29, 30) and f"but {left} row(s)" in str(got["queue"].items)
