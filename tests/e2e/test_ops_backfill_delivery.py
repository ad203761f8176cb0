"""ops_backfill_delivery: a past date is planned if needed and delivered; a rerun sends nothing twice."""
import datetime as dt

import pytest

from include.core.dates import ist_today
from tests.world import make_ready, rows, scalar, seed

pytestmark = pytest.mark.e2e
PAST = ist_today() - dt.timedelta(days=3)


@pytest.fixture(scope="module")
def dag():
    from tests.support import load_dag

    return load_dag("ops_backfill_delivery")


def test_backfill_plans_sends_and_is_idempotent(dag, app_db, sandbox, airflow_db):
    seed(app_db, advisors=80, day=PAST)
    make_ready(app_db, day=PAST)
    assert scalar(app_db, "SELECT count(*) FROM delivery_plan") == 0
    conf = {"business_date": str(PAST), "reason": "missed delivery during outage"}
    assert dag.test(run_conf=conf).state == "success"
    planned = scalar(app_db, "SELECT count(*) FROM delivery_plan WHERE business_date = :d", d=PAST)
    assert planned == scalar(app_db, "SELECT count(*) FROM eligible_advisors")
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'accepted'") == planned
    assert sandbox.ledger_stats()["accepted"] == planned
    assert dag.test(run_conf=conf).state == "success"  # rerun
    assert sandbox.ledger_stats()["accepted"] == planned
    assert sandbox.ledger_stats()["duplicate_idempotency_keys"] == {}
    audits = rows(app_db, "SELECT action, target, reason FROM audit_log ORDER BY audit_id")
    assert audits == [("backfill_delivery", str(PAST), "missed delivery during outage")] * 2


@pytest.mark.parametrize("conf", [
    {"business_date": str(ist_today() + dt.timedelta(days=1)), "reason": "future"},
    {"business_date": str(PAST), "reason": ""},
])
def test_backfill_bad_parameters_change_nothing(dag, app_db, sandbox, airflow_db, conf):
    seed(app_db, advisors=20, day=PAST)
    try:
        state = dag.test(run_conf=conf).state
    except Exception as exc:  # noqa: BLE001 - Param validation may reject the conf before the run
        state = f"rejected: {exc}"
    assert state != "success"
    assert scalar(app_db, "SELECT count(*) FROM deliveries") == 0
    assert scalar(app_db, "SELECT count(*) FROM audit_log") == 0
    assert sandbox.ledger_stats()["accepted"] == 0
