"""ops_pause_sending / ops_resume_sending end to end with dag.test() against PostgreSQL."""
import pytest
import sqlalchemy as sa

from include.delivery.kill_switch import sending_state

pytestmark = pytest.mark.e2e


def _dag(dag_id):
    from tests.support import load_dag

    return load_dag(dag_id)


def _audit(engine):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT actor, action, target, reason FROM audit_log ORDER BY audit_id")).fetchall()


def test_pause_then_resume_records_audit_rows(app_db, sandbox, airflow_db):
    run = _dag("ops_pause_sending").test(run_conf={"reason": "bad content in today's pack"})
    assert run.state == "success"
    state = sending_state(app_db)
    assert state.paused and state.reason == "bad content in today's pack"
    run = _dag("ops_resume_sending").test(run_conf={"reason": "content fixed"})
    assert run.state == "success"
    assert not sending_state(app_db).paused
    rows = _audit(app_db)
    assert [(r.action, r.target, r.reason) for r in rows] == [
        ("pause_sending", "sending", "bad content in today's pack"), ("resume_sending", "sending", "content fixed")]
    assert all(r.actor for r in rows)


def test_pause_and_resume_are_announced_on_slack_with_who_and_why(app_db, sandbox, airflow_db):
    assert _dag("ops_pause_sending").test(run_conf={"reason": "wrong chart in today's pack"}).state == "success"
    posts = [p["payload"] for p in sandbox.slack_posts()]
    assert len(posts) == 1, posts
    pause = posts[0]
    assert pause["text"].startswith("[P1] [ops_pause_sending.pause_sending]") and "PAUSED" in pause["text"]
    by = sending_state(app_db).changed_by
    assert by in pause["text"] and "wrong chart in today's pack" in str(pause["blocks"])
    assert "ops_resume_sending" in str(pause["blocks"])

    assert _dag("ops_resume_sending").test(run_conf={"reason": "chart fixed"}).state == "success"
    resume = [p["payload"] for p in sandbox.slack_posts()][-1]
    assert resume["text"].startswith("[info] [ops_resume_sending.resume_sending]") and "resumed" in resume["text"]
    assert "chart fixed" in str(resume["blocks"])


@pytest.mark.parametrize("reason", ["", "  "])
def test_empty_reason_fails_and_changes_nothing(app_db, sandbox, airflow_db, reason):
    dag = _dag("ops_pause_sending")
    try:
        run = dag.test(run_conf={"reason": reason})
        failed = run.state == "failed"
    except Exception as exc:  # noqa: BLE001 - Param validation may reject the conf before the run
        failed = "reason" in str(exc) or "valid" in str(exc).lower()
    assert failed
    assert not sending_state(app_db).paused
    assert _audit(app_db) == []
    assert not any("PAUSED" in p["payload"]["text"] for p in sandbox.slack_posts())
