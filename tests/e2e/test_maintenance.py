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
    from include.maintenance.backups import take_backup, verify_backup

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
    from include.maintenance.backups import take_backup, verify_backup

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


def test_two_backups_in_the_same_second_keep_their_own_files(app_db, data_dir):
    """The file name had second resolution: a second backup overwrote the first one's file."""
    from include.maintenance.backups import take_backup, verify_backup

    seed(app_db, advisors=10)
    a, b = take_backup(app_db, "daily"), take_backup(app_db, "daily")
    assert a["uri"] != b["uri"]
    assert verify_backup(app_db, a["backup_id"]).ok and verify_backup(app_db, b["backup_id"]).ok

def test_backup_retention_keeps_7_daily_and_4_weekly(app_db, data_dir):
    from include.maintenance.backups import apply_retention

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


def test_a_backup_records_and_verifies_every_table_of_the_app_schema(app_db, data_dir, sandbox):
    """Not 10 hard-coded tables: the catalog's list at backup time, recorded with the backup."""
    from include.maintenance.backups import take_backup, verify_backup

    seed(app_db, advisors=30)
    execute(app_db, "CREATE TABLE added_by_a_later_migration (id int PRIMARY KEY, note text)")
    execute(app_db, "INSERT INTO added_by_a_later_migration VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    execute(app_db, """INSERT INTO webhook_events (dedupe_key, kind, payload, raw_body, signature_valid)
                       SELECT 's:' || g, 'status', '{}', '{}', true FROM generate_series(1, 25) g""")
    catalog = [r.tablename for r in rows(app_db, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                                                 " ORDER BY tablename")]
    b = take_backup(app_db, "daily")
    rec = rows(app_db, "SELECT tables, table_counts, table_checksums FROM backups WHERE backup_id = :b",
               b=b["backup_id"])[0]
    assert rec.tables == catalog and len(catalog) > 20
    assert {"added_by_a_later_migration", "webhook_events", "delivery_attempts", "do_not_contact",
            "schema_migrations"} <= set(rec.tables)
    assert set(rec.table_counts) == set(rec.table_checksums) == set(catalog)
    assert rec.table_counts["added_by_a_later_migration"] == 3 and rec.table_counts["webhook_events"] == 25
    v = verify_backup(app_db, b["backup_id"])
    assert v.ok and v.tables_checked == catalog, v
    # A restore that differs from the recording in a table outside the old key list is caught.
    execute(app_db, """UPDATE backups SET table_counts = table_counts || '{"added_by_a_later_migration": 4}',
                       table_checksums = table_checksums || '{"webhook_events": "0/0"}' WHERE backup_id = :b""",
            b=b["backup_id"])
    v = verify_backup(app_db, b["backup_id"])
    assert not v.ok and sorted(v.mismatches) == ["added_by_a_later_migration: 3 rows restored, 4 expected",
                                                  "webhook_events: checksum differs"], v
    # A table the backup recorded but the restore lacks is a mismatch too.
    execute(app_db, "UPDATE backups SET tables = array_append(tables, 'vanished'), table_counts = table_counts || "
                    "'{\"vanished\": 1}' WHERE backup_id = :b", b=b["backup_id"])
    v = verify_backup(app_db, b["backup_id"])
    assert "vanished: recorded in the backup but missing from the restore" in v.mismatches


# -- DR drill --------------------------------------------------------------------------------------------------
def test_dr_drill_restores_only_a_verified_backup_and_refuses_without_one(app_db, data_dir, sandbox):
    from include.maintenance.backups import take_backup, verify_backup
    from include.maintenance.dr_drill import dr_drill

    seed(app_db, advisors=30)
    first = take_backup(app_db, "daily")["backup_id"]
    # Nothing verified yet: refused, with a P1 and a clear message, and nothing restored or recorded.
    r = dr_drill(app_db)
    assert r.severity.value == "P1" and not r.ok and r.facts["refused"]
    assert "no kept backup has passed its restore verification" in r.summary
    assert any(f"backup {first} " in i and "not verified yet" in i for i in r.items), r.items
    assert scalar(app_db, "SELECT count(*) FROM dr_drills") == 0
    assert scalar(app_db, "SELECT count(*) FROM pg_database WHERE datname LIKE 'dr_drill%'") == 0
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any(t.startswith("[P1]") and "DR drill refused" in t for t in posts), posts
    # Verified: it is the one restored, even when a newer backup exists that nobody verified.
    assert verify_backup(app_db, first).ok
    newer = take_backup(app_db, "daily")["backup_id"]
    r = dr_drill(app_db)
    assert r.facts["backup_id"] == first and not r.facts.get("refused")
    assert any(f"backup {newer} " in s for s in r.facts["skipped_newer_unverified"])
    assert rows(app_db, "SELECT backup_id FROM dr_drills") == [(first,)]
    # Asking for the unverified one by id is refused too; a failed verification does not qualify either.
    assert dr_drill(app_db, backup_id=newer).facts["refused"]
    execute(app_db, "UPDATE backups SET verify_ok = false WHERE backup_id = :b", b=first)
    r = dr_drill(app_db)
    assert r.facts["refused"] and any("FAILED verification" in i for i in r.items)
    assert scalar(app_db, "SELECT count(*) FROM dr_drills") == 1


# -- retention -----------------------------------------------------------------------------------------------
def test_retention_survives_a_crash_between_archive_and_delete(app_db, data_dir, sandbox):
    from include.maintenance.retention import archive_old_rows

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


def test_an_archived_date_is_never_queued_again_and_cannot_be_backfilled(app_db, data_dir):
    """"Never twice" outlives retention: the plan of an archived date stays, its deliveries do not."""
    from include.core import config
    from include.content import readiness as content
    from include.delivery import planning
    from include.core.db import query
    from include.delivery.fanout import enqueue
    from include.operations.actions import authorise_backfill
    from include.maintenance.retention import archive_old_rows

    seed(app_db, advisors=40)
    make_ready(app_db)
    content.assign_content(app_db, DAY)
    planning.build_plan(app_db, DAY, {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"}, jitter_window_s=5)
    planned = scalar(app_db, "SELECT count(*) FROM delivery_plan WHERE business_date = :d", d=DAY)
    assert planned > 20 and enqueue(app_db, DAY) == planned
    execute(app_db, "UPDATE deliveries SET status = 'accepted', attempts = 1, wamid = 'wamid.t' || delivery_id, "
                    "accepted_at = now() - interval '200 days', updated_at = now() - interval '200 days'")
    sent = {r.advisor_id: r.wamid for r in rows(app_db, "SELECT advisor_id, wamid FROM deliveries")}
    # Weekly retention runs once the date is past retention.
    out = archive_old_rows(app_db, DAY + dt.timedelta(days=config.RETENTION_DAYS + 10))
    assert out["deliveries"]["archived_rows"] == planned
    assert scalar(app_db, "SELECT count(*) FROM deliveries") == 0
    assert scalar(app_db, "SELECT count(*) FROM delivery_plan WHERE business_date = :d", d=DAY) == planned
    # The fan-out's enqueue (also what a backfill runs) queues nobody: everyone was already sent.
    assert enqueue(app_db, DAY) == 0
    assert scalar(app_db, "SELECT count(*) FROM deliveries") == 0
    # And a backfill of that date is refused before anything is audited or sent.
    with pytest.raises(ValueError, match=rf"business date {DAY} is archived: .*{planned} deliveries"):
        authorise_backfill(app_db, str(DAY), "resend after the outage", "ops@test")
    assert scalar(app_db, "SELECT count(*) FROM audit_log") == 0
    # What proves it: each archived key, kept in the transaction that deleted the row.
    proof = rows(app_db, "SELECT business_date, advisor_id, idempotency_key, final_status, wamid, archive_uri, "
                         "archived_at FROM sent_keys")
    assert {p.advisor_id: p.wamid for p in proof} == sent
    assert all(p.business_date == DAY and p.final_status == "accepted" and p.idempotency_key == f"{DAY}:{p.advisor_id}"
               and p.archive_uri in out["deliveries"]["files"] and p.archived_at for p in proof)
    # The renders of an archived plan are no longer "needed" by a plan row waiting to be queued.
    needed = rows(app_db, "SELECT storage_uri FROM renders r WHERE EXISTS (SELECT 1 FROM delivery_plan p WHERE "
                          "p.render_id = r.render_id AND p.business_date = :d)", d=DAY)
    with app_db.connect() as conn:
        in_use = {r.storage_uri for r in conn.execute(query("retention/renders_in_use"),
                                                      {"since": DAY + dt.timedelta(days=1)})}
    assert not in_use & {r.storage_uri for r in needed}


def test_backfill_refuses_a_date_older_than_retention(app_db):
    from include.core import config
    from include.core.dates import ist_today
    from include.operations.actions import authorise_backfill
    from include.maintenance.retention import refuse_archived_date

    today = ist_today()
    too_old = today - dt.timedelta(days=config.RETENTION_DAYS + 1)
    with pytest.raises(ValueError, match=rf"business date {too_old} is older than the {config.RETENTION_DAYS}-day "
                                         r"retention"):
        authorise_backfill(app_db, str(too_old), "resend an old pack", "ops@test")
    assert scalar(app_db, "SELECT count(*) FROM audit_log") == 0
    refuse_archived_date(app_db, today - dt.timedelta(days=config.RETENTION_DAYS))  # the oldest date still kept
    assert authorise_backfill(app_db, str(today - dt.timedelta(days=3)), "missed delivery", "ops@test")


def test_cleanup_never_removes_a_render_a_pending_delivery_needs(app_db, data_dir, sandbox):
    from include.content import nightly_window as nightly
    from include.maintenance.retention import clean_render_cache

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


def _state(engine, data_dir):
    """Everything a dry run must leave alone: row counts of every app table (but the run's own
    check_results), files in the object store, index files, vacuum/analyze counters, extensions."""
    tables = [r.relname for r in rows(engine, "SELECT relname FROM pg_stat_user_tables WHERE schemaname = "
                                              "current_schema() AND relname <> 'check_results' ORDER BY relname")]
    counts = {t: scalar(engine, f'SELECT count(*) FROM "{t}"') for t in tables}
    files = {str(p.relative_to(data_dir)): (p.stat().st_size, p.stat().st_mtime)
             for p in data_dir.rglob("*") if p.is_file()}
    indexes = {r.relname: r.relfilenode for r in rows(engine, "SELECT c.relname, c.relfilenode FROM pg_class c "
                                                              "WHERE c.relkind = 'i' AND c.relnamespace = "
                                                              "current_schema()::regnamespace")}
    vacuums = {r.relname: (r.vacuum_count, r.analyze_count) for r in rows(
        engine, "SELECT relname, vacuum_count, analyze_count FROM pg_stat_user_tables")}
    extensions = sorted(r.extname for r in rows(engine, "SELECT extname FROM pg_extension"))
    return {"counts": counts, "files": files, "indexes": indexes, "vacuums": vacuums, "extensions": extensions}


def test_weekly_maintenance_dry_run_changes_nothing(dags, app_db, data_dir, sandbox, airflow_db):
    from include.maintenance.backups import take_backup
    from include.core.storage import render_root

    sent_world(app_db, sandbox)
    old = DAY - dt.timedelta(days=200)
    execute(app_db, "UPDATE deliveries SET business_date = :o, idempotency_key = :o || ':' || advisor_id", o=old)
    execute(app_db, """INSERT INTO webhook_events (dedupe_key, kind, wamid, status, payload, raw_body,
                       signature_valid, received_at) SELECT 's:old' || g, 'status', 'wamid.old' || g, 'delivered',
                       '{}', '{}', true, now() - interval '200 days' FROM generate_series(1, 30) g""")
    # A bloated index on a hot table (> 1 MB, leaf density far below 60%): what upkeep would REINDEX.
    execute(app_db, """INSERT INTO webhook_events (dedupe_key, kind, payload, raw_body, signature_valid)
                       SELECT 'bloat:' || md5(g::text) || md5((g * 7)::text), 'status', '{}', '{}', true
                       FROM generate_series(1, 40000) g""")
    execute(app_db, "DELETE FROM webhook_events WHERE dedupe_key LIKE 'bloat:%' AND event_id % 20 <> 0")
    with app_db.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("VACUUM webhook_events"))
        c.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pgstattuple"))  # so the dry run can measure bloat
    # Dead tuples: what upkeep would VACUUM. Autovacuum must not clean them up before the dry run looks.
    execute(app_db, "ALTER TABLE deliveries SET (autovacuum_enabled = false)")
    execute(app_db, "UPDATE deliveries SET updated_at = now()")
    # Backends report table statistics lazily (PostgreSQL 15+): wait until the dead tuples are visible.
    deadline = time.monotonic() + 30
    while scalar(app_db, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'deliveries'") == 0:
        assert time.monotonic() < deadline, "dead tuples never reported"
        time.sleep(0.2)
    # Old render objects nothing needs, and more backups than retention keeps.
    folder = render_root() / "old"
    folder.mkdir(parents=True, exist_ok=True)
    stale = time.time() - 120 * 86400
    for i in range(3):
        (folder / f"stale-{i}.jpg").write_bytes(b"\xff\xd8" + bytes(1000))
        os.utime((data_dir / "objects" / "renders" / "old" / f"stale-{i}.jpg"), (stale, stale))
    for _ in range(8):
        take_backup(app_db, "daily")
    before = _state(app_db, data_dir)
    dr = dags["weekly_maintenance"].test(run_conf={"dry_run": True})
    assert dr.state == "success", {t.task_id: t.state for t in dr.get_task_instances()}
    after = _state(app_db, data_dir)
    for part in before:
        assert after[part] == before[part], part
    got = {r.check_name: r for r in rows(app_db, "SELECT check_name, severity, summary FROM check_results")}
    n_old = scalar(app_db, "SELECT count(*) FROM deliveries")
    assert got["retention"].summary.startswith("dry run: nothing archived or deleted")
    assert f"deliveries: would archive {n_old} row(s) into 1 file(s)" in got["retention"].summary
    assert "webhook_events: would archive 30 row(s)" in got["retention"].summary
    upkeep = got["db_upkeep"].summary
    assert upkeep.startswith("dry run: would vacuum") and "deliveries" in upkeep and "nothing run" in upkeep
    assert "would reindex 0" not in upkeep and "webhook_events" in upkeep.split("would reindex")[1], upkeep
    assert got["render_cache_cleanup"].summary.startswith("dry run: would remove 3 render(s)")
    assert "dry run" in got["airflow_metadata_cleanup"].summary
    assert got["backup"].summary.startswith("dry run: no backup taken")
    assert "would delete 1 backup(s)" in got["backup_verification"].summary
    assert all(r.severity == "info" for r in got.values()), {k: (r.severity, r.summary) for k, r in got.items()}


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
    from include.maintenance.compliance_review import review

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
    # 3. an operator paused sending without an audit row (in the reviewed month, whatever today is)
    execute(app_db, "UPDATE ops_controls SET paused = true, reason = 'testing', changed_by = 'mallory', "
                    "changed_at = CAST(:d AS timestamptz) + interval '10 hours' WHERE control = 'sending'", d=DAY)
    result, found = review(app_db, dt.date(2026, 11, 1), dt.date(2026, 12, 1))
    assert sorted((f["rule"], f["delivery_id"]) for f in found) == sorted([
        ("DISCLAIMER-MISSING", victims[0]), ("SENT-TO-DNC", victims[1]), ("UNAUDITED-KILL-SWITCH", None)])
    assert result.severity.value == "P1" and any("mallory" in i for i in result.items)


def test_capacity_projection_on_fixture_data():
    from include.maintenance.capacity import project

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
    from include.maintenance.backups import take_backup, verify_backup
    from include.delivery.pre_delivery_check import prepare_queue

    seed(app_db, advisors=60)
    make_ready(app_db)
    from include.content import readiness as content

    content.assign_content(app_db, DAY)
    prepare_queue(app_db, DAY, {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"})
    assert verify_backup(app_db, take_backup(app_db, "weekly")["backup_id"]).ok  # the drill restores verified ones
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
