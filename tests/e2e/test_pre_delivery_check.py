"""pre_delivery_check end to end with dag.test() against PostgreSQL and the sandbox."""
import pytest

from tests.world import DAY, make_ready, rows, scalar, seed

pytestmark = pytest.mark.e2e
CONF = {"business_date": str(DAY), "jitter_window_s": 30}


@pytest.fixture(scope="module")
def dag():
    from tests.support import load_dag

    return load_dag("pre_delivery_check")


def run(dag):
    return dag.test(run_conf=CONF)


def checks(engine):
    return {r.check_name: r for r in rows(engine, "SELECT DISTINCT ON (check_name) check_name, severity, ok, items "
                                                  "FROM check_results ORDER BY check_name, checked_at DESC")}


def summary(sandbox):
    posts = [p["payload"] for p in sandbox.slack_posts() if "Pre-delivery check" in p["payload"]["text"]]
    assert posts, sandbox.slack_posts()
    return posts[-1]


def test_healthy_world_passes_and_writes_the_plan(dag, app_db, sandbox, airflow_db):
    seed(app_db)
    make_ready(app_db)
    dr = run(dag)
    assert dr.state == "success"
    got = checks(app_db)
    assert set(got) == {"system_health", "whatsapp_numbers", "templates", "content_ready", "queue_preparation",
                        "number_ramps", "spend_budget"}
    assert all(c.ok for c in got.values()), got
    eligible = scalar(app_db, "SELECT count(*) FROM eligible_advisors")
    assert scalar(app_db, "SELECT count(*) FROM delivery_plan WHERE business_date = :d", d=DAY) == eligible
    assert scalar(app_db, "SELECT count(*) FROM pack_assignments WHERE source = 'fallback'") == 0
    post = summary(sandbox)
    assert post["text"].startswith("[info]") and "all checks passed" in post["text"]


def test_kill_switch_left_paused_is_a_p1_finding_with_who_when_and_why(dag, app_db, sandbox, airflow_db):
    from include.delivery.kill_switch import set_sending_paused

    seed(app_db)
    make_ready(app_db)
    set_sending_paused(app_db, True, "investigating a wrong disclaimer", "alice")
    assert run(dag).state == "success"
    c = checks(app_db)["system_health"]
    assert c.severity == "P1" and not c.ok
    item = next(i for i in c.items if "kill switch is PAUSED" in i)
    assert "alice" in item and "investigating a wrong disclaimer" in item and " IST" in item
    post = summary(sandbox)
    assert post["text"].startswith("[P1]") and "kill switch is PAUSED" in str(post["blocks"])


def test_yellow_number_warns_p1(dag, app_db, sandbox, airflow_db):
    seed(app_db)
    make_ready(app_db)
    sandbox.admin.post("/_sandbox/numbers/100000000000003", json={"quality_rating": "YELLOW"}).raise_for_status()
    assert run(dag).state == "success"
    c = checks(app_db)["whatsapp_numbers"]
    assert c.severity == "P1" and any("YELLOW" in i for i in c.items)
    assert summary(sandbox)["text"].startswith("[P1]")


def test_red_number_rotates_to_hot_spare_and_pages(dag, app_db, sandbox, airflow_db):
    seed(app_db)
    make_ready(app_db)
    sandbox.admin.post("/_sandbox/numbers/100000000000002", json={"quality_rating": "RED"}).raise_for_status()
    assert run(dag).state == "failed"  # a P0 fails the run after the summary is posted
    numbers = {r.phone_number_id: r for r in rows(app_db, "SELECT * FROM sending_numbers")}
    assert not numbers["100000000000002"].active
    assert numbers["100000000000005"].role == "primary" and numbers["100000000000005"].shard == 1
    assert scalar(app_db, "SELECT count(*) FROM delivery_plan WHERE phone_number_id = '100000000000002'") == 0
    assert scalar(app_db, "SELECT count(*) FROM delivery_plan WHERE phone_number_id = '100000000000005'") > 0
    assert scalar(app_db, "SELECT count(*) FROM audit_log WHERE action = 'rotate_number'") == 1
    post = summary(sandbox)
    assert post["text"].startswith("[P0]") and "hot spare 100000000000005" in str(post["blocks"])


def test_paused_template_switches_to_backup(dag, app_db, sandbox, airflow_db):
    seed(app_db)
    make_ready(app_db)
    sandbox.admin.post("/_sandbox/templates/daily_pack_v1", json={"status": "PAUSED"}).raise_for_status()
    assert run(dag).state == "success"
    c = checks(app_db)["templates"]
    assert c.severity == "P1" and "switched to backup variant daily_pack_v2" in str(c.items)
    used = {r[0] for r in rows(app_db, "SELECT DISTINCT template_name FROM delivery_plan WHERE template_language = 'en'")}
    assert used == {"daily_pack_v2"}


def test_paused_template_without_backup_is_p0(dag, app_db, sandbox, airflow_db):
    seed(app_db)
    make_ready(app_db)
    for name in ("daily_pack_v1", "daily_pack_v2"):
        sandbox.admin.post(f"/_sandbox/templates/{name}", json={"status": "PAUSED"}).raise_for_status()
    assert run(dag).state == "failed"
    assert checks(app_db)["templates"].severity == "P0"
    assert summary(sandbox)["text"].startswith("[P0]")
    assert scalar(app_db, "SELECT count(*) FROM delivery_plan") == 0


def test_tier_below_recipient_count_is_p0_with_count_at_risk(dag, app_db, sandbox, airflow_db):
    seed(app_db, advisors=300)
    make_ready(app_db)
    sandbox.configure(messaging_tier="TIER_250")
    assert run(dag).state == "failed"
    eligible = scalar(app_db, "SELECT count(*) FROM eligible_advisors")
    c = checks(app_db)["whatsapp_numbers"]
    assert c.severity == "P0"
    assert f"{eligible - 250} advisors at risk" in str(c.items)


def test_missing_render_gets_a_fallback(dag, app_db, sandbox, airflow_db):
    seed(app_db)
    make_ready(app_db)
    import sqlalchemy as sa

    with app_db.begin() as c:
        victim = c.execute(sa.text("DELETE FROM renders WHERE render_id = (SELECT min(render_id) FROM renders) "
                                   "RETURNING advisor_id")).scalar_one()
    assert run(dag).state == "success"
    src, reason = rows(app_db, "SELECT source, reason FROM pack_assignments WHERE advisor_id = :a", a=victim)[0]
    assert src == "fallback" and "no approved pack" in reason
    plan = rows(app_db, "SELECT content_source FROM delivery_plan WHERE advisor_id = :a", a=victim)
    assert [p[0] for p in plan] == ["fallback"]
    c = checks(app_db)["content_ready"]
    assert c.severity == "P2" and "1 advisor(s)" in str(c.items)


def test_pending_approval_is_reported(dag, app_db, sandbox, airflow_db):
    seed(app_db)
    make_ready(app_db, approve_pending=False)
    assert run(dag).state == "success"
    c = checks(app_db)["content_ready"]
    assert c.severity == "P1" and "pending approval" in str(c.items)


def test_an_access_token_expiring_within_7_days_is_a_p1_finding(dag, app_db, sandbox, airflow_db):
    seed(app_db)
    make_ready(app_db)
    sandbox.faults(token_expires_in_s=3 * 86400)
    assert run(dag).state == "success"
    c = checks(app_db)["system_health"]
    assert c.severity == "P1" and not c.ok
    assert any("access token expires" in i and "rotate it" in i for i in c.items), c.items
