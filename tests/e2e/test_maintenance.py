"""Weekly and monthly maintenance against PostgreSQL (real pg_dump/pg_restore), object storage on disk
and the sandbox: verified backups and corruption, crash-safe retention, render cleanup, the DR drill,
the compliance review's planted violations, capacity projection, the first-Sunday timetable."""
import datetime as dt
import gzip
import json
import os
import time

import pytest
import sqlalchemy as sa

from tests.world import DAY, make_ready, planned_world, rows, scalar, seed, send_everything

pytestmark = pytest.mark.e2e


def execute(engine, sql, **params):
    with engine.begin() as conn:
        return conn.execute(sa.text(sql), params)


@pytest.fixture(scope="module")
def dags(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    from tests.support import ROOT

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    return {d: bag.get_dag(d) for d in ("weekly_maintenance", "monthly_maintenance", "daily_backup")}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A private object store for the test (cleanup and backups must not see other tests' files)."""
    monkeypatch.setenv("FA_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def sent_world(engine, sandbox):
    """A delivered morning: 80 advisors planned and sent through the real sender."""
    planned_world(engine, advisors=80, research_digits="")
    send_everything(engine, sandbox)


# -- backups -----------------------------------------------------------------------------------------------
def test_a_backup_really_restores_and_matches_table_by_table(app_db, data_dir, sandbox):
    from include.backups import take_backup, verify_backup

    seed(app_db, advisors=120)
    make_ready(app_db)
    b = take_backup(app_db, "weekly")
    assert b["bytes"] > 10_000 and os.path.exists(b["uri"].removeprefix("file://"))
    sidecar = open(b["uri"].removeprefix("file://") + ".sha256").read()
    assert sidecar.startswith(b["sha256"])
    execute(app_db, "DELETE FROM renders")  # later changes do not matter: the backup recorded its own snapshot
    v = verify_backup(app_db, b["backup_id"])
    assert v.ok and v.mismatches == [] and v.error is None, v
    row = rows(app_db, "SELECT verify_ok, table_counts FROM backups WHERE backup_id = :b", b=b["backup_id"])[0]
    assert row.verify_ok and row.table_counts["advisors"] == scalar(app_db, "SELECT count(*) FROM advisors")
    # No scratch database is left behind.
    assert scalar(app_db, "SELECT count(*) FROM pg_database WHERE datname LIKE 'restore_check%'") == 0


def test_a_corrupted_backup_is_detected_and_alerts_p1(app_db, data_dir, sandbox):
    from include.backups import take_backup, verify_backup

    seed(app_db, advisors=40)
    b = take_backup(app_db, "daily")
    path = b["uri"].removeprefix("file://")
    with open(path, "r+b") as f:  # flip bytes in the middle of the dump
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\x00corrupt\x00")
    v = verify_backup(app_db, b["backup_id"])
    assert not v.ok and "corrupted" in v.error
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any(t.startswith("[P1]") and f"Backup {b['backup_id']}" in t for t in posts), posts
    assert scalar(app_db, "SELECT verify_ok FROM backups WHERE backup_id = :b", b=b["backup_id"]) is False


def test_backup_retention_keeps_7_daily_and_4_weekly(app_db, data_dir):
    from include.backups import apply_retention

    for kind, n in (("daily", 9), ("weekly", 6)):
        for i in range(n):
            execute(app_db, """INSERT INTO backups (kind, uri, sha256, bytes, snapshot_at, table_counts, table_checksums)
                               VALUES (:k, :u, repeat('a', 64), 1, now() - make_interval(days => :i), '{}', '{}')""",
                    k=kind, u=f"file://{data_dir}/backups/{kind}/b{i}.dump", i=i)
    out = apply_retention(app_db)
    assert len(out["removed"]) == 2 + 2
    live = {r.kind: r.n for r in rows(app_db, "SELECT kind, count(*) AS n FROM backups WHERE deleted_at IS NULL "
                                              "GROUP BY kind")}
    assert live == {"daily": 7, "weekly": 4}
    assert scalar(app_db, "SELECT min(snapshot_at) > now() - interval '7 days' FROM backups "
                          "WHERE kind = 'daily' AND deleted_at IS NULL")


# -- retention -----------------------------------------------------------------------------------------------
def test_retention_survives_a_crash_between_archive_and_delete(app_db, data_dir, sandbox):
    from include.retention import archive_old_rows

    sent_world(app_db, sandbox)
    old = DAY - dt.timedelta(days=200)
    execute(app_db, "UPDATE deliveries SET business_date = :o, idempotency_key = :o || ':' || advisor_id", o=old)
    for i in range(30):
        execute(app_db, """INSERT INTO webhook_events (dedupe_key, kind, wamid, status, payload, raw_body,
                           signature_valid, received_at) VALUES (:k, 'status', :w, 'delivered', '{}', '{}', true,
                           now() - interval '200 days')""", k=f"s:old{i}", w=f"wamid.old{i}")
    # One old inbound STOP is the evidence of a DNC entry: it must be kept.
    evidence = execute(app_db, """INSERT INTO webhook_events (dedupe_key, kind, from_phone, payload, raw_body,
                                  signature_valid, received_at) VALUES ('m:stop', 'message', '+919811111111', '{}',
                                  '{}', true, now() - interval '300 days') RETURNING event_id""").scalar_one()
    execute(app_db, "INSERT INTO do_not_contact (phone_e164, reason, source, source_event_id) VALUES "
                    "('+919811111111', 'STOP', 'inbound_opt_out', :e)", e=evidence)
    before = {r.delivery_id: r for r in rows(app_db, "SELECT * FROM deliveries")}
    n_events = scalar(app_db, "SELECT count(*) FROM webhook_events")

    def crash(path):
        raise RuntimeError(f"simulated crash after writing {path}")

    with pytest.raises(RuntimeError, match="simulated crash"):
        archive_old_rows(app_db, DAY, fault=crash)
    # Nothing lost: the rows are still there (the delete never committed), the file exists.
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == n_events
    assert scalar(app_db, "SELECT count(*) FROM archive_runs") == 0
    out = archive_old_rows(app_db, DAY)
    assert out["webhook_events"]["archived_rows"] == 30 and out["deliveries"]["archived_rows"] == len(before)
    assert scalar(app_db, "SELECT count(*) FROM deliveries") == 0
    assert scalar(app_db, "SELECT count(*) FROM webhook_events") == 1  # the DNC evidence
    # Nothing duplicated: each archived row is in exactly one file, once.
    archived = []
    for uri in out["deliveries"]["files"]:
        archived += [json.loads(line) for line in gzip.open(uri.removeprefix("file://"), "rt")]
    assert sorted(a["delivery_id"] for a in archived) == sorted(before)
    assert {a["wamid"] for a in archived} == {r.wamid for r in before.values()}
    files = list((data_dir / "objects" / "archive" / "webhook_events").iterdir())
    assert len(files) == 1
    # A rerun finds nothing more to do.
    again = archive_old_rows(app_db, DAY)
    assert again["deliveries"]["archived_rows"] == again["webhook_events"]["archived_rows"] == 0


def test_cleanup_never_removes_a_render_a_pending_delivery_needs(app_db, data_dir, sandbox):
    from include import nightly
    from include.retention import clean_render_cache

    seed(app_db, advisors=16)
    old_day = DAY - dt.timedelta(days=120)
    for b in nightly.render_batches(app_db, DAY):
        nightly.render_batch(app_db, DAY, b["batch"], b["batch_count"], "approved")
    renders = rows(app_db, "SELECT render_id, advisor_id, pack_id, storage_uri, bytes FROM renders ORDER BY render_id")
    needed, unneeded, recent = renders[0], renders[1], renders[2]
    # Everything is 120 days old except `recent`'s object; `needed` is planned for an old date and still queued.
    execute(app_db, "UPDATE renders SET business_date = :o WHERE render_id <> :r", o=old_day, r=recent.render_id)
    execute(app_db, """INSERT INTO delivery_plan (business_date, advisor_id, segment, pack_id, render_id,
                       template_name, phone_number_id, shard, jitter_ms)
                       SELECT :o, a.advisor_id, a.segment, :p, :r, 'daily_pack_v1', '100000000000001', 0, 0
                       FROM advisors a WHERE a.advisor_id = :a""", o=old_day, p=needed.pack_id, r=needed.render_id,
            a=needed.advisor_id)
    execute(app_db, """INSERT INTO deliveries (idempotency_key, business_date, advisor_id, to_phone, status)
                       SELECT :o || ':' || advisor_id, :o, advisor_id, phone_e164, 'queued' FROM advisors
                       WHERE advisor_id = :a""", o=old_day, a=needed.advisor_id)
    old = time.time() - 120 * 86400
    for r in renders:
        if r.render_id != recent.render_id:
            os.utime(r.storage_uri.removeprefix("file://"), (old, old))
    out = clean_render_cache(app_db, DAY, retention_days=30)
    assert os.path.exists(needed.storage_uri.removeprefix("file://"))
    assert not os.path.exists(unneeded.storage_uri.removeprefix("file://"))
    assert os.path.exists(recent.storage_uri.removeprefix("file://"))
    assert out["removed"] == len(renders) - 2 and out["kept_old_but_needed"] == 1
    assert out["bytes_freed"] == sum(r.bytes for r in renders if r.render_id not in (needed.render_id,
                                                                                       recent.render_id))


# -- weekly DAG end to end -------------------------------------------------------------------------------------
def test_weekly_maintenance_runs_end_to_end(dags, app_db, data_dir, sandbox, airflow_db):
    sent_world(app_db, sandbox)
    execute(app_db, "UPDATE deliveries SET updated_at = now() WHERE status = 'accepted'")  # dead tuples
    dr = dags["weekly_maintenance"].test(run_conf={"dry_run": False})
    assert dr.state == "success", {t.task_id: t.state for t in dr.get_task_instances()}
    got = {r.check_name: r for r in rows(app_db, "SELECT check_name, severity, ok, summary, items FROM check_results")}
    assert {"db_upkeep", "render_cache_cleanup", "retention", "airflow_metadata_cleanup", "backup",
            "backup_verification", "dependency_check"} <= set(got)
    assert got["backup_verification"].ok and "matches" in got["backup_verification"].summary
    assert "slow-query report included" in got["db_upkeep"].summary
    assert any("NOT performed" in i for i in got["dependency_check"].items)  # offline: said plainly
    post = [p["payload"]["text"] for p in sandbox.slack_posts() if "Weekly maintenance" in p["payload"]["text"]]
    assert post


# -- monthly ---------------------------------------------------------------------------------------------------
def test_monthly_timetable_fires_only_on_first_sundays_for_a_year(dags):
    import pendulum
    from airflow.timetables.base import TimeRestriction

    from airflow.timetables.trigger import CronTriggerTimetable

    declared = dags["monthly_maintenance"].timetable  # the SDK timetable; the scheduler runs its core twin
    tt = CronTriggerTimetable(declared.expression, timezone=declared.timezone)
    start = pendulum.datetime(2027, 1, 1, tz="Asia/Kolkata")
    restriction = TimeRestriction(earliest=start, latest=pendulum.datetime(2027, 12, 31, 23, tz="Asia/Kolkata"),
                                  catchup=True)
    fired, last = [], None
    while True:
        info = tt.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None:
            break
        fired.append(info.run_after.in_timezone("Asia/Kolkata"))
        last = info.data_interval
    assert len(fired) == 12 and [f.month for f in fired] == list(range(1, 13))
    for f in fired:
        assert f.day_of_week == pendulum.SUNDAY and f.day <= 7 and (f.hour, f.minute) == (1, 0), f
    assert [f.day for f in fired] == [3, 7, 7, 4, 2, 6, 4, 1, 5, 3, 7, 5]


def test_compliance_review_finds_planted_violations(app_db, sandbox):
    from include.compliance import review

    sent_world(app_db, sandbox)
    clean, _ = review(app_db, dt.date(2026, 11, 1), dt.date(2026, 12, 1))
    assert clean.ok and clean.facts["messages_sent"] > 70, clean.items
    victims = [r.delivery_id for r in rows(app_db, "SELECT delivery_id FROM deliveries WHERE wamid IS NOT NULL "
                                                   "ORDER BY delivery_id LIMIT 2")]
    # 1. a message sent with a pack that has no disclaimer
    execute(app_db, """INSERT INTO content_packs (pack_key, business_date, scope, segment, title, body, disclaimer,
                       status, approved_by, approved_at) VALUES ('no-disclaimer', :d, 'segment', 'equity', 't',
                       'b', '', 'approved', 'compliance@demo', now())""", d=DAY)
    execute(app_db, "UPDATE deliveries SET pack_id = (SELECT pack_id FROM content_packs WHERE pack_key = "
                    "'no-disclaimer') WHERE delivery_id = :v", v=victims[0])
    # 2. a number that was on the DNC list before it was sent to
    execute(app_db, """INSERT INTO do_not_contact (phone_e164, reason, source, added_at)
                       SELECT to_phone, 'regulator list', 'regulator', accepted_at - interval '1 day'
                       FROM deliveries WHERE delivery_id = :v""", v=victims[1])
    # 3. an operator paused sending without an audit row
    execute(app_db, "UPDATE ops_controls SET paused = true, reason = 'testing', changed_by = 'mallory', "
                    "changed_at = now() WHERE control = 'sending'")
    result, found = review(app_db, dt.date(2026, 11, 1), dt.date(2026, 12, 1))
    assert sorted((f["rule"], f["delivery_id"]) for f in found) == sorted([
        ("DISCLAIMER-MISSING", victims[0]), ("SENT-TO-DNC", victims[1]), ("UNAUDITED-KILL-SWITCH", None)])
    assert result.severity.value == "P1" and any("mallory" in i for i in result.items)


def test_capacity_projection_on_fixture_data():
    from include.capacity import project

    months = [dt.date(2026, m, 1) for m in range(6, 12)]
    history = list(zip(months, [10_000, 11_000, 12_000, 13_000, 14_000, 15_000], strict=True))
    p = project(history, throughput_mps=400, mps_per_number=80, tier_limit=100_000)
    assert p.slope_per_month == 1000.0 and p.current == 15_000
    assert p.capacity_per_window == 96_000                   # 400 msg/s x 300 s x 0.8
    assert p.months_until_window_full == 81.0                # (96,000 - 15,000) / 1,000
    assert p.months_until_tier_full == 85.0
    assert p.projected_in_12_months == 27_000
    assert p.numbers_needed_now == 1 and p.numbers_needed_in_12_months == 2   # 19,200 per number per window
    full = project(history, throughput_mps=40, mps_per_number=40, tier_limit=10_000)
    assert full.months_until_window_full == 0.0 and full.months_until_tier_full == 0.0
    assert full.numbers_needed_now == 2                      # 15,000 / (40 x 300 x 0.8 = 9,600)
    flat = project([(months[0], 5_000), (months[1], 5_000)], throughput_mps=400, mps_per_number=80, tier_limit=None)
    assert flat.months_until_window_full is None and flat.months_until_tier_full is None


def test_monthly_maintenance_drill_review_capacity_and_refreshes(dags, app_db, data_dir, sandbox, airflow_db):
    from include.backups import take_backup
    from include.pre_delivery import prepare_queue

    seed(app_db, advisors=60)
    make_ready(app_db)
    from include import content

    content.assign_content(app_db, DAY)
    prepare_queue(app_db, DAY, {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"})
    take_backup(app_db, "weekly")
    sandbox.admin.post("/_sandbox/templates/daily_pack_v1", json={"quality_score": "YELLOW"}).raise_for_status()
    execute(app_db, "UPDATE content_packs SET created_at = now() - interval '2 years' WHERE pack_key IN "
                    "('evergreen-01', 'evergreen-02', 'evergreen-03', 'evergreen-04', 'evergreen-05')")
    dr = dags["monthly_maintenance"].test(run_conf={"business_date": "2026-12-06"})
    assert dr.state == "success", {t.task_id: t.state for t in dr.get_task_instances()}
    drill = rows(app_db, "SELECT rto_s, rpo_s, plan_matches, plan_rows, ok FROM dr_drills")[0]
    assert drill.plan_matches and drill.plan_rows == scalar(app_db, "SELECT count(*) FROM delivery_plan")
    assert float(drill.rto_s) < 3600 and drill.rpo_s is not None
    got = {r.check_name: r for r in rows(app_db, "SELECT check_name, severity, ok, summary, items FROM check_results")}
    assert got["compliance_review"].ok
    # Template refresh: daily_pack_v1 is nearing a pause, so daily_pack_v3 was submitted to the sandbox.
    assert "1 variant(s) submitted" in got["template_refresh"].summary
    remote = sandbox.admin.get("/v21.0/200000000000001/message_templates",
                               headers={"Authorization": "Bearer " + __import__("tests.support").support.TEST_TOKEN})
    assert "daily_pack_v3" in remote.text
    assert scalar(app_db, "SELECT variant_rank FROM whatsapp_templates WHERE name = 'daily_pack_v3'") == 3
    # Fallback refresh: 5 old packs retired, 7 fresh left < 8 needed -> P1.
    assert got["fallback_refresh"].severity == "P1" and "5 retired, 7 fresh left" in got["fallback_refresh"].summary
    assert (data_dir / "objects" / "reports" / "capacity" / "2026-12.html").exists()
    assert (data_dir / "objects" / "reports" / "compliance" / "2026-11-violations.csv").exists()
