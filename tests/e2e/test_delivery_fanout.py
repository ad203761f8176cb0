"""delivery_fanout end to end: dag.test() against PostgreSQL and the sandbox, ~200 advisors with
research-mode recipients. The sandbox ledger proves nothing was sent twice and nothing was lost."""
import sqlalchemy as sa

import pytest

from include import content, planning
from tests.world import DAY, make_ready, rows, scalar, seed

pytestmark = pytest.mark.e2e
CONF = {"business_date": str(DAY), "honour_jitter": False}


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    from tests.support import ROOT

    return DagBag(dag_folder=str(ROOT / "dags" / "delivery_fanout.py")).get_dag("delivery_fanout")


def planned_world(engine, advisors=200, research_digits="12345"):
    seed(engine, advisors=advisors)
    with engine.begin() as c:
        # A few recipients become research-mode numbers with fixed outcomes.
        for i, digit in enumerate(research_digits):
            c.execute(sa.text("UPDATE advisors SET phone_e164 = :p WHERE advisor_id = (SELECT advisor_id FROM "
                              "eligible_advisors ORDER BY advisor_id OFFSET :o LIMIT 1)"),
                      {"p": f"+91990000{i:03d}{digit}", "o": i * 7})
    make_ready(engine)
    content.assign_content(engine, DAY)
    planning.build_plan(engine, DAY, {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"}, jitter_window_s=5)
    return scalar(engine, "SELECT count(*) FROM delivery_plan")


def assert_no_duplicates_and_nothing_lost(engine, sandbox):
    stats = sandbox.ledger_stats()
    assert stats["duplicate_recipient_days"] == {} and stats["duplicate_idempotency_keys"] == {}
    accepted = scalar(engine, "SELECT count(*) FROM deliveries WHERE status IN ('accepted','sent','delivered','read')")
    assert accepted == stats["accepted"]  # every ledger send is recorded, every recorded send is in the ledger
    keys = {e["biz_opaque_callback_data"] for e in sandbox.ledger(limit=100000)}
    ours = {r[0] for r in rows(engine, "SELECT idempotency_key FROM deliveries WHERE wamid IS NOT NULL")}
    assert keys == ours
    planned = scalar(engine, "SELECT count(*) FROM delivery_plan")
    assert scalar(engine, "SELECT count(*) FROM deliveries") == planned


def test_happy_path_accepts_more_than_99_percent(dag, app_db, sandbox, airflow_db):
    planned = planned_world(app_db)
    dr = dag.test(run_conf=CONF)
    assert dr.state == "success"
    accepted = scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'accepted'")
    assert accepted / planned > 0.99
    assert_no_duplicates_and_nothing_lost(app_db, sandbox)
    # The temporary-failure research number needed retries; its attempts are recorded.
    assert scalar(app_db, "SELECT max(attempts) FROM deliveries") >= 3
    maps = rows(app_db, "SELECT count(DISTINCT (shard, segment)) FROM delivery_plan")[0][0]
    assert 1 < maps <= 64
    summary = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any("Delivery fan-out summary" in t for t in summary)
    assert not any(t.startswith("[P0]") for t in summary), summary
    # A second run for the same date sends nothing.
    before = sandbox.ledger_stats()["accepted"]
    assert dag.test(run_conf=CONF).state == "success"
    assert sandbox.ledger_stats()["accepted"] == before
