"""ops_settle_unknown_deliveries: an operator resends or closes the sends whose outcome stayed unknown."""
import pytest
import sqlalchemy as sa

from include.core.dates import ist_today
from tests.world import rows, scalar, seed

pytestmark = pytest.mark.e2e
TODAY = ist_today()


@pytest.fixture(scope="module")
def dag():
    from tests.support import load_dag

    return load_dag("ops_settle_unknown_deliveries")


def _unknown_sends(engine, n=3):
    with engine.begin() as c:
        c.execute(sa.text("""
            INSERT INTO deliveries (idempotency_key, business_date, advisor_id, to_phone, status, wamid, attempts,
                                    sending_at, accepted_at)
            SELECT CAST(:d AS text) || ':' || advisor_id, :d, advisor_id, phone_e164,
                   CASE WHEN advisor_id % 2 = 0 THEN 'unknown' ELSE 'accepted' END,
                   CASE WHEN advisor_id % 2 = 0 THEN NULL ELSE 'wamid.' || advisor_id END, 1,
                   now() - interval '10 minutes', CASE WHEN advisor_id % 2 = 1 THEN now() END
            FROM (SELECT advisor_id, phone_e164 FROM advisors ORDER BY advisor_id LIMIT :n) a"""), {"d": TODAY, "n": n * 2})
    return scalar(engine, "SELECT count(*) FROM deliveries WHERE status = 'unknown'")


@pytest.mark.parametrize("decision, status", [("resend", "queued"), ("mark_failed", "failed")])
def test_an_operator_settles_unknown_sends_with_an_audited_decision(dag, app_db, sandbox, airflow_db, decision, status):
    seed(app_db, advisors=20)
    unknown = _unknown_sends(app_db)
    assert unknown > 0
    conf = {"business_date": str(TODAY), "decision": decision, "reason": "no webhook after 2 days"}
    assert dag.test(run_conf=conf).state == "success"
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'unknown'") == 0
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = :s", s=status) == unknown
    actor, details = rows(app_db, "SELECT actor, details FROM audit_log WHERE action = 'settle_unknown_deliveries'")[0]
    assert details["decision"] == decision and details["rows"] == unknown and actor


def test_an_empty_reason_changes_nothing(dag, app_db, sandbox, airflow_db):
    seed(app_db, advisors=20)
    unknown = _unknown_sends(app_db)
    try:
        state = dag.test(run_conf={"business_date": str(TODAY), "decision": "resend", "reason": ""}).state
    except Exception as exc:  # noqa: BLE001 - Param validation may reject the conf before the run
        state = f"rejected: {exc}"
    assert state != "success"
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'unknown'") == unknown
    assert scalar(app_db, "SELECT count(*) FROM audit_log") == 0
