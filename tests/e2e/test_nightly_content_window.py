"""nightly_content_window and ops_bulk_approve end to end: dag.test() against PostgreSQL, object
storage on disk and the sandbox (WhatsApp and Slack)."""
import datetime as dt

import pytest
import sqlalchemy as sa

from tests.world import DAY, rows, scalar, seed

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dags(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    from tests.support import ROOT

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    return {d: bag.get_dag(d) for d in ("nightly_content_window", "ops_bulk_approve", "pre_delivery_check")}


def execute(engine, sql, **params):
    with engine.begin() as conn:
        return conn.execute(sa.text(sql), params)


def plant_bad_content(engine):
    """The insurance pack lost its disclaimer; one advisor has a personal pack with a banned claim."""
    execute(engine, "UPDATE content_packs SET disclaimer = '' WHERE pack_key = :k", k=f"{DAY}-insurance-daily")
    victim = scalar(engine, "SELECT min(advisor_id) FROM eligible_advisors WHERE segment = 'equity'")
    execute(engine, """
        INSERT INTO content_packs (pack_key, business_date, scope, advisor_id, title, body, disclaimer, status,
                                   approved_by, approved_at)
        SELECT :k, :d, 'advisor', :a, 'Special for you', 'Guaranteed returns of 15% on our fund!', disclaimer,
               'approved', 'compliance@demo', now()
        FROM content_packs WHERE pack_key = :src""", k=f"{DAY}-personal-{victim}", d=DAY, a=victim,
            src=f"{DAY}-equity-daily")
    return victim


def window_summary(sandbox):
    posts = [p["payload"] for p in sandbox.slack_posts() if "Nightly content window" in p["payload"]["text"]]
    assert posts, [p["payload"]["text"] for p in sandbox.slack_posts()]
    return posts[-1]


def test_nightly_window_renders_qcs_falls_back_and_canaries_and_a_rerun_redoes_nothing(dags, app_db, sandbox,
                                                                                      receiver, airflow_db):
    from airflow.sdk import ObjectStoragePath

    seed(app_db)
    victim = plant_bad_content(app_db)
    dr = dags["nightly_content_window"].test(run_conf={"business_date": str(DAY)})
    assert dr.state == "success"

    eligible = scalar(app_db, "SELECT count(*) FROM eligible_advisors")
    insurance = scalar(app_db, "SELECT count(*) FROM eligible_advisors WHERE segment = 'insurance'")
    # Every eligible advisor has content, and every assignment points at a QC-passed render.
    got = rows(app_db, """SELECT x.source, r.qc_status, count(*) AS n FROM pack_assignments x
                          LEFT JOIN renders r ON r.render_id = x.render_id WHERE x.business_date = :d
                          GROUP BY 1, 2""", d=DAY)
    assert {(g.source, g.qc_status): g.n for g in got} == {("approved", "passed"): eligible - insurance - 1,
                                                           ("fallback", "passed"): insurance + 1}
    # QC failures are recorded per render with their rule ids.
    failed = {r.advisor_id: r.rules for r in rows(app_db, """
        SELECT advisor_id, array_agg(f ->> 'rule' ORDER BY f ->> 'rule') AS rules FROM renders,
        jsonb_array_elements(qc_reasons) f WHERE business_date = :d AND qc_status = 'failed' GROUP BY 1""", d=DAY)}
    assert failed[victim] == ["CMP-BANNED-CLAIM"]
    assert sum(1 for rules in failed.values() if rules == ["DISC-MISSING"]) == insurance
    assert scalar(app_db, "SELECT count(*) FROM pack_assignments WHERE advisor_id = :a AND source = 'fallback'",
                  a=victim) == 1
    # Renders are real JPEGs in object storage, named by their input hash.
    sample = rows(app_db, "SELECT storage_uri, input_sha256, bytes FROM renders WHERE qc_status = 'passed' LIMIT 3")
    for s in sample:
        path = ObjectStoragePath(s.storage_uri)
        assert path.name == f"{s.input_sha256}.jpg" and path.read_bytes()[:2] == b"\xff\xd8"
        assert len(path.read_bytes()) == s.bytes
    # The canary went out through the sender, reached the ledger and was delivered.
    canary = rows(app_db, "SELECT status, recipients, delivered FROM canary_runs")
    assert [(c.status, c.recipients, c.delivered) for c in canary] == [("passed", 4, 4)]
    ledger = sandbox.admin.get("/_sandbox/ledger").json()["data"]
    canary_msgs = [e for e in ledger if (e["biz_opaque_callback_data"] or "").startswith(f"canary:{DAY}:")]
    assert len(canary_msgs) == 4 and len(ledger) == 4
    assert {e["phone_number_id"] for e in canary_msgs} == {f"10000000000000{i}" for i in range(1, 5)}
    assert all(e["header_image"] and "/renders/" in e["header_image"] for e in canary_msgs)
    summary = window_summary(sandbox)
    text = str(summary["blocks"])
    assert "CMP-BANNED-CLAIM 1" in text and f"DISC-MISSING {insurance}" in text and "4/4 canary" in text

    # Rerun for the same date: nothing rendered again, no new rows, no new canary messages.
    before = {t: scalar(app_db, f"SELECT count(*) FROM {t}") for t in
              ("renders", "pack_assignments", "canary_runs", "canary_sends")}
    checked = scalar(app_db, "SELECT max(qc_checked_at) FROM renders")
    dr = dags["nightly_content_window"].test(run_conf={"business_date": str(DAY)})
    assert dr.state == "success"
    assert before == {t: scalar(app_db, f"SELECT count(*) FROM {t}") for t in before}
    assert scalar(app_db, "SELECT max(qc_checked_at) FROM renders") == checked
    assert len(sandbox.admin.get("/_sandbox/ledger").json()["data"]) == 4
    ti = dr.get_task_instances()
    batches = [t for t in ti if t.task_id == "render_approved_packs"]
    assert len(batches) == 2 and all(t.state == "success" for t in batches)


def test_fallback_renders_rotate_over_seven_days(app_db, sandbox):
    """With no approved content for 8 days, each advisor gets a rendered, QC-passed fallback and never
    the same evergreen pack twice within 7 days."""
    from include.content import nightly_window as nightly

    seed(app_db, advisors=24)
    execute(app_db, "UPDATE content_packs SET status = 'rejected' WHERE NOT is_evergreen_fallback")
    for k in range(8):
        day = DAY + dt.timedelta(days=k)
        for b in nightly.render_batches(app_db, day):
            nightly.render_batch(app_db, day, b["batch"], b["batch_count"], "approved")
        nightly.assign_fallbacks(app_db, day)
        for b in nightly.render_batches(app_db, day):
            nightly.render_batch(app_db, day, b["batch"], b["batch_count"], "fallback")
        out = nightly.finalize_fallbacks(app_db, day)
        assert out["assigned"] == out["eligible"] == out["fallback"]
    got = rows(app_db, """SELECT x.advisor_id, x.business_date, x.pack_id, r.qc_status FROM pack_assignments x
                          LEFT JOIN renders r ON r.render_id = x.render_id ORDER BY 1, 2""")
    assert all(g.qc_status == "passed" for g in got)
    by_advisor = {}
    for g in got:
        by_advisor.setdefault(g.advisor_id, []).append(g.pack_id)
    for packs in by_advisor.values():
        assert len(packs) == 8
        for i in range(8):
            assert packs[i] not in packs[max(0, i - 7):i]
    # Evergreen renders are reused across dates instead of redrawn only when inputs match: different
    # packs per day here, so every render is new; the rows still point at distinct objects.
    assert scalar(app_db, "SELECT count(DISTINCT storage_uri) FROM renders WHERE qc_status = 'passed'") == len(got)


def test_a_fallback_pack_that_fails_qc_is_replaced(app_db, sandbox):
    from include.content import nightly_window as nightly

    seed(app_db, advisors=24)
    execute(app_db, "UPDATE content_packs SET status = 'rejected' WHERE NOT is_evergreen_fallback")
    # Half the evergreen library was edited into a banned claim.
    execute(app_db, "UPDATE content_packs SET body = body || ' Risk-free!' WHERE is_evergreen_fallback "
                    "AND pack_id % 2 = 0")
    nightly.assign_fallbacks(app_db, DAY)
    for b in nightly.render_batches(app_db, DAY):
        nightly.render_batch(app_db, DAY, b["batch"], b["batch_count"], "fallback")
    out = nightly.finalize_fallbacks(app_db, DAY)
    assert out["assigned"] == out["eligible"]
    assert scalar(app_db, """SELECT count(*) FROM pack_assignments x JOIN renders r ON r.render_id = x.render_id
                             WHERE r.qc_status = 'passed'""") == out["eligible"]
    assert scalar(app_db, "SELECT count(*) FROM pack_assignments x JOIN content_packs p USING (pack_id) "
                          "WHERE p.body LIKE '%Risk-free!%'") == 0


def test_backlog_alert_fires_above_the_threshold_and_not_at_it(app_db, sandbox):
    from include.content.nightly_window import approval_backlog_check

    seed(app_db)
    pending = scalar(app_db, "SELECT count(*) FROM content_packs WHERE business_date = :d AND status = 'pending'",
                     d=DAY)
    at = approval_backlog_check(app_db, DAY, threshold=pending)
    assert at.ok and not sandbox.slack_posts()
    above = approval_backlog_check(app_db, DAY, threshold=pending - 1)
    assert above.severity.value == "P2"
    posts = sandbox.slack_posts()
    assert len(posts) == 1 and posts[0]["hook"] == "approvers"
    text = str(posts[0]["payload"])
    assert f"{pending} packs pending" in text and "pending · equity" in text and "oldest:" in text


def test_bulk_approve_respects_the_risk_level_and_audits_each_pack(dags, app_db, sandbox, airflow_db):
    seed(app_db)
    before = {r.pack_key: r.risk_level for r in rows(
        app_db, "SELECT pack_key, risk_level FROM content_packs WHERE business_date = :d AND status = 'pending'",
        d=DAY)}
    low = {k for k, v in before.items() if v <= 2}
    assert low and len(low) < len(before)
    dr = dags["ops_bulk_approve"].test(run_conf={"business_date": str(DAY), "max_risk_level": 2,
                                                 "reason": "approver on leave, low-risk only"})
    assert dr.state == "success"
    now_approved = {r.pack_key for r in rows(app_db, "SELECT pack_key FROM content_packs WHERE business_date = :d "
                                                     "AND status = 'approved' AND pack_key LIKE '%extra%'", d=DAY)}
    assert now_approved == low
    audit = rows(app_db, "SELECT target, reason, details FROM audit_log WHERE action = 'bulk_approve_pack'")
    assert {a.target for a in audit} == low and all(a.reason == "approver on leave, low-risk only" for a in audit)


def test_bulk_approve_refuses_high_risk_levels(app_db):
    from include.content.nightly_window import bulk_approve

    seed(app_db)
    with pytest.raises(ValueError, match="not a low risk level"):
        bulk_approve(app_db, DAY, 4, "because I can", "someone")
    assert scalar(app_db, "SELECT count(*) FROM audit_log") == 0


def test_a_failing_canary_is_a_p1_and_the_pre_delivery_check_sees_it(app_db, sandbox, receiver):
    from include.content import nightly_window as nightly
    from include.content.canary import run_canary
    from include.delivery.pre_delivery_check import content_ready
    from include.whatsapp.client import WhatsAppHook

    seed(app_db, advisors=40)
    for b in nightly.render_batches(app_db, DAY):
        nightly.render_batch(app_db, DAY, b["batch"], b["batch_count"], "approved")
    nightly.assign_fallbacks(app_db, DAY)
    hook = WhatsAppHook()
    # ...07 is rejected by the API (131026); ...03 is accepted but its delivery fails.
    result = run_canary(app_db, hook.get_settings(), DAY, phones=("+919900000001", "+919900000007", "+919900000003"),
                        wait_s=15)
    assert result.severity.value == "P1" and not result.ok
    assert any("131026" in i or "undeliverable" in i.lower() for i in result.items), result.items
    assert scalar(app_db, "SELECT status FROM canary_runs") == "failed"
    assert any("Nightly canary failed" in p["payload"]["text"] for p in sandbox.slack_posts())
    check = content_ready(app_db, DAY)
    assert check.severity.value == "P1" and any("canary failed" in i for i in check.items)
