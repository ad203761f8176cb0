"""ops_retry_failed_deliveries and ops_rotate_number: happy paths, bad parameters, audit rows."""
import datetime as dt

import pytest
import sqlalchemy as sa

from include.core.dates import ist_today
from tests.world import failed_deliveries, rows, scalar, seed

pytestmark = pytest.mark.e2e
TODAY = ist_today()


@pytest.fixture(scope="module")
def dags():
    from tests.support import load_dag

    return {d: load_dag(d) for d in ("ops_retry_failed_deliveries", "ops_rotate_number")}


def _run(dag, conf):
    try:
        return dag.test(run_conf=conf).state
    except Exception as exc:  # noqa: BLE001 - Param validation may reject the conf before the run
        return f"rejected: {exc}"


def _failed_deliveries(engine, codes):
    return failed_deliveries(engine, TODAY, codes)


def test_retry_requeues_only_retryable_failures(dags, app_db, sandbox, airflow_db):
    seed(app_db, advisors=20)
    _failed_deliveries(app_db, [130429, 131000, 503, 131056, 131026, 131050, 131047, 132015, 368])
    state = _run(dags["ops_retry_failed_deliveries"], {"business_date": str(TODAY), "reason": "storm is over"})
    assert state == "success"
    got = dict(rows(app_db, "SELECT error_code, status FROM deliveries WHERE status = 'failed'"))
    assert set(got) == {131026, 131050, 131047, 132015, 368}
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'queued' AND error_code IS NULL") == 4
    action, reason, details = rows(app_db, "SELECT action, reason, details FROM audit_log")[0]
    assert action == "retry_failed_deliveries" and reason == "storm is over" and details["requeued"] == 4


@pytest.mark.parametrize("conf", [
    {"business_date": str(TODAY + dt.timedelta(days=2)), "reason": "future date"},
    {"business_date": str(TODAY), "reason": ""},
])
def test_retry_bad_parameters_change_nothing(dags, app_db, sandbox, airflow_db, conf):
    seed(app_db, advisors=5)
    _failed_deliveries(app_db, [130429])
    assert _run(dags["ops_retry_failed_deliveries"], conf) != "success"
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'failed'") == 1
    assert scalar(app_db, "SELECT count(*) FROM audit_log") == 0


def _plan_rows(engine):
    from include.content import readiness as content
    from include.delivery import planning

    content.assign_content(engine, TODAY)
    planning.build_plan(engine, TODAY, {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"}, jitter_window_s=10)


def test_rotate_number_moves_unsent_rows_only(dags, app_db, sandbox, airflow_db):
    seed(app_db, advisors=80)
    _plan_rows(app_db)
    on_two = scalar(app_db, "SELECT count(*) FROM delivery_plan WHERE phone_number_id = '100000000000002'")
    sent = scalar(app_db, "SELECT min(advisor_id) FROM delivery_plan WHERE phone_number_id = '100000000000002'")
    with app_db.begin() as c:
        c.execute(sa.text("INSERT INTO deliveries (idempotency_key, business_date, advisor_id, to_phone, status, wamid,"
                          " phone_number_id) SELECT CAST(:d AS text) || ':' || advisor_id, :d, advisor_id, phone_e164,"
                          " 'accepted', 'wamid.sent', '100000000000002' FROM advisors WHERE advisor_id = :a"),
                  {"d": TODAY, "a": sent})
    conf = {"business_date": str(TODAY), "from_number": "100000000000002", "to_number": "100000000000005",
            "reason": "number flagged by Meta"}
    assert _run(dags["ops_rotate_number"], conf) == "success"
    assert scalar(app_db, "SELECT count(*) FROM delivery_plan WHERE phone_number_id = '100000000000002'") == 1
    assert scalar(app_db, "SELECT count(*) FROM delivery_plan WHERE phone_number_id = '100000000000005'") == on_two - 1
    details = rows(app_db, "SELECT details FROM audit_log WHERE action = 'rotate_number'")[0][0]
    assert details["rows_moved"] == on_two - 1
    # The shard itself moved: that is what senders read.
    assert rows(app_db, "SELECT phone_number_id, role, shard FROM sending_numbers WHERE phone_number_id IN "
                        "('100000000000002', '100000000000005') ORDER BY 1") == [
        ("100000000000002", "hot_spare", None), ("100000000000005", "primary", 1)]


def test_operator_rotation_moves_a_run_in_flight_within_a_tick(app_db, sandbox):
    """ops_rotate_number during a fan-out: the shard's later sends leave from the new number (ledger per number)."""
    import threading
    import time

    from tests.e2e.test_delivery_fanout import _send_all
    from tests.world import planned_world

    planned_world(app_db, advisors=200, research_digits="")
    with app_db.begin() as c:  # spread the sends over ~10 s so the rotation lands mid-run
        c.execute(sa.text("UPDATE delivery_plan SET jitter_ms = (advisor_id * 37) % 10000"))
    results = []
    runner = threading.Thread(target=lambda: results.extend(_send_all(app_db, sandbox, parallel=True)))
    runner.start()
    deadline = time.monotonic() + 30
    while sandbox.ledger_stats()["by_number"].get("100000000000002", 0) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    conf = {"business_date": str(TODAY), "from_number": "100000000000002", "to_number": "100000000000005",
            "reason": "drill: move shard 1"}
    from include.delivery.numbers import move_between_numbers

    rotated = move_between_numbers(app_db, TODAY, conf["from_number"], conf["to_number"], conf["reason"], "tests")
    rotated_at = time.time()
    runner.join(120)
    assert not runner.is_alive()
    ledger = sandbox.ledger(limit=100000)
    on_old = [e for e in ledger if e["phone_number_id"] == "100000000000002"]
    on_new = [e for e in ledger if e["phone_number_id"] == "100000000000005"]
    assert on_old and on_new, sandbox.ledger_stats()["by_number"]
    # Within one control tick (0.2 s here) plus the requests already in flight, nothing more leaves the old number.
    assert max(e["accepted_at"] for e in on_old) < rotated_at + 1.0
    assert min(e["accepted_at"] for e in on_new) > rotated_at - 1.0
    assert rotated["shard"] == 1 and "100000000000005" in {n for r in results for n in r["numbers_used"]}
    stats = sandbox.ledger_stats()
    assert stats["duplicate_recipient_days"] == {} and stats["accepted"] == scalar(
        app_db, "SELECT count(*) FROM delivery_plan")


@pytest.mark.parametrize("conf", [
    {"from_number": "100000000000002", "to_number": "99999999", "reason": "typo in number"},
    {"from_number": "100000000000002", "to_number": "100000000000002", "reason": "same number"},
    {"from_number": "100000000000002", "to_number": "100000000000005", "reason": ""},
])
def test_rotate_bad_parameters_change_nothing(dags, app_db, sandbox, airflow_db, conf):
    seed(app_db, advisors=20)
    _plan_rows(app_db)
    before = rows(app_db, "SELECT advisor_id, phone_number_id FROM delivery_plan ORDER BY 1")
    assert _run(dags["ops_rotate_number"], {"business_date": str(TODAY), **conf}) != "success"
    assert rows(app_db, "SELECT advisor_id, phone_number_id FROM delivery_plan ORDER BY 1") == before
    assert scalar(app_db, "SELECT count(*) FROM audit_log") == 0
