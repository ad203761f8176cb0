"""Incident records, escalation over simulated hours, at-most-once paging, post-mortems, and the two DAGs
(incident_escalation, ops_edit_oncall_roster) against PostgreSQL. PagerDuty is a fake `send` recording calls (the
sandbox's PagerDuty endpoint is wired when the transport lands)."""
from __future__ import annotations

import datetime as dt
import sys
import threading
import time
import types

import pytest
import sqlalchemy as sa

from devtools.demo_world import ONCALL_ROSTER, oncall_routing_key, seed_oncall_roster
from include.core.alerting import Alert, RunRef, Severity
from include.incidents import paging, records, roster
from tests.world import rows, scalar

pytestmark = pytest.mark.e2e

DAY = dt.date(2026, 12, 1)
T0 = dt.datetime(2026, 12, 1, 0, 35, tzinfo=dt.UTC)  # 06:05 IST, the SLA checkpoint
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)
ROLE_OF_KEY = {oncall_routing_key(r[0]): r[0] for r in ONCALL_ROSTER}


class FakePagerDuty:
    """Records send_event calls (the signature of include.paging.pagerduty.send_event)."""

    def __init__(self, delay_s: float = 0.0, fail_first: int = 0):
        self.calls: list[dict] = []
        self.delay_s, self.fail_first = delay_s, fail_first
        self._lock = threading.Lock()

    def __call__(self, action, routing_key, dedup_key, summary=None, severity="critical",
                 source="advisor-content-delivery", custom_details=None, links=None, conn_id="pagerduty_events"):
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                raise ConnectionError("PagerDuty unreachable")
            self.calls.append(dict(action=action, role=ROLE_OF_KEY.get(routing_key), dedup_key=dedup_key,
                                   summary=summary, severity=severity, source=source, details=custom_details or {}))
        return {"status": "success", "dedup_key": dedup_key}

    def triggers(self) -> list[dict]:
        return [c for c in self.calls if c["action"] == "trigger"]

    def roles(self) -> list[str]:
        return sorted(c["role"] for c in self.triggers())

    def closures(self) -> list[tuple[str, str]]:
        return sorted((c["role"], c["action"]) for c in self.calls if c["action"] != "trigger")


class FakeSlack:
    def __init__(self, ok: bool = True):
        self.posts: list[Alert] = []
        self.ok = ok

    def __call__(self, alert) -> bool:
        self.posts.append(alert)
        return self.ok


@pytest.fixture
def db(app_db):
    with app_db.begin() as conn:
        seed_oncall_roster(conn)
    return app_db


def _alert(severity, title, **facts):
    return Alert(Severity(severity), title, facts, RunRef("post_delivery_report", "check_sla_0605", "manual__x"))


# -- records -------------------------------------------------------------------------------------------------------
def test_open_or_join_by_dedup_key_with_a_timeline(db):
    first = records.record_alert(db, _alert("P1", "Opt-out spike and delivery rate 93.10% below the warning"),
                                 DAY, T0)
    assert first.opened and first.severity == "P1" and first.category == "delivery_rate"
    assert first.dedup_key == f"delivery_rate:{DAY}" and first.impact["delivery_rate"] == pytest.approx(0.931)
    assert first.postmortem_due_at is None  # not a P0

    joined = records.record_alert(db, _alert("P0", "delivery rate 88.00% below the critical threshold",
                                             delivery_rate=0.88), DAY, T0 + 20 * M)
    assert joined.incident_id == first.incident_id and not joined.opened
    assert joined.severity == "P0" and joined.impact["delivery_rate"] == 0.88
    assert joined.postmortem_due_at == T0 + 24 * H  # from the opening, runbook 000
    assert set(joined.impact["since"]) == {"rate<95", "rate<90"}
    assert dt.datetime.fromisoformat(joined.impact["since"]["rate<90"]) == T0 + 20 * M

    milder = records.record_alert(db, _alert("P1", "Delivery SLA missed: 97% accepted"), DAY, T0 + 25 * M)
    assert milder.category == "sla" and milder.incident_id != first.incident_id  # another category, another one
    again = records.open_or_join(db, f"delivery_rate:{DAY}", "P1", "delivery_rate", "still low", DAY, T0 + 30 * M)
    assert again.incident_id == first.incident_id and again.severity == "P0"  # never gets better

    tl = records.timeline(db, first.incident_id)
    assert [e["kind"] for e in tl] == ["alert", "alert", "escalation", "alert"]
    assert tl[2]["text"].startswith("severity P1 → P0")
    assert tl[0]["actor"] == "post_delivery_report.check_sla_0605"
    assert tl[1]["details"]["source"]["run_id"] == "manual__x"

    assert records.record_alert(db, _alert("P2", "delivery rate 94% below the warning"), DAY, T0) is None
    other_day = records.record_alert(db, _alert("P0", "delivery rate 80% below"), DAY + dt.timedelta(days=1), T0)
    assert other_day.incident_id != first.incident_id

    assert records.resolve(db, first.incident_id, "asha", "rates recovered after rotation", T0 + H)
    reopened = records.open_or_join(db, f"delivery_rate:{DAY}", "P1", "delivery_rate", "low again", DAY, T0 + 2 * H)
    assert reopened.opened and reopened.incident_id != first.incident_id


def test_record_alert_quietly_as_alerting_post_calls_it(db):
    a = _alert("P0", "Template daily_pack_v1 (en) not usable and no approved backup variant",
               business_date="2026-11-30")
    iid = records.record_alert_quietly(a, engine=db, now=T0)
    got = records.get(db, iid)
    assert (got.dedup_key, got.business_date) == ("operational:2026-11-30", dt.date(2026, 11, 30))
    assert records.record_alert_quietly(_alert("info", "all checks passed"), engine=db, now=T0) is None
    # a database that does not answer is logged, never raised into the alerting path
    unreachable = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert records.record_alert_quietly(_alert("P0", "x"), engine=unreachable, now=T0) is None


def test_concurrent_opens_of_one_key_make_one_incident(db):
    barrier, got = threading.Barrier(4), []

    def open_one(i):
        barrier.wait()
        got.append(records.open_or_join(db, "quality:2026-12-01", "P1", "quality", f"alert {i}", DAY, T0).incident_id)

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1
    assert scalar(db, "SELECT count(*) FROM incidents") == 1
    assert scalar(db, "SELECT count(*) FROM incident_timeline WHERE kind = 'alert'") == 4


# -- escalation over simulated hours -------------------------------------------------------------------------------
def _run_until(db, send, start, end, step=5 * M, post_slack=None):
    """escalate() every `step` like the 5-minute DAG; returns [(offset from T0, role, step)]."""
    seen, now = [], start
    while now <= end:
        before = len(send.triggers())
        paging.escalate(db, now, send=send, post_slack=post_slack or FakeSlack())
        seen += [(now - T0, c["role"], c["details"]["step"]) for c in send.triggers()[before:]]
        now += step
    return seen


def test_rate_below_95_then_below_90_pages_the_right_roles_at_the_right_times(db):
    send = FakePagerDuty()
    inc = records.record_alert(db, _alert("P1", "delivery rate 93.00% below the warning threshold",
                                          delivery_rate=0.93), DAY, T0)
    got = _run_until(db, send, T0, T0 + 5 * M)
    assert got == [(0 * M, "engineering_manager", "rate<95:engineering_manager"), (0 * M, "primary", "time:primary"),
                   (5 * M, "secondary", "time:secondary")]
    assert records.acknowledge(db, inc.incident_id, "asha.rao", "pagerduty", T0 + 7 * M)
    got = _run_until(db, send, T0 + 10 * M, T0 + 90 * M)
    assert got == [(H, "head_of_product", "rate<95:head_of_product")]  # acknowledged: no time ladder any more

    records.record_alert(db, _alert("P0", "delivery rate 88.00% below the critical threshold", delivery_rate=0.88),
                         DAY, T0 + 90 * M)
    got = _run_until(db, send, T0 + 90 * M, T0 + 5 * H)
    assert got == [(90 * M, "cto", "rate<90:cto"), (2 * H, "ceo", "rate<90:ceo"),
                   (150 * M, "board", "rate<90:board"), (4 * H, "cto", "rate<95:cto")]
    # one PagerDuty alert per role of the incident, severity by the incident's severity when sent
    assert {c["dedup_key"] for c in send.calls if c["role"] == "cto"} == {f"incident-{inc.incident_id}-cto"}
    assert [c["severity"] for c in send.triggers()][:4] == ["error"] * 4
    assert send.triggers()[-1]["severity"] == "critical"
    # the acknowledgement closed the PagerDuty alerts of the roles paged before it, and only those
    assert send.closures() == [("engineering_manager", "acknowledge"), ("primary", "acknowledge"),
                               ("secondary", "acknowledge")]
    kinds = [e["kind"] for e in records.timeline(db, inc.incident_id)]
    assert kinds.count("ack") == 1 and kinds.count("page") + kinds.count("escalation") >= len(send.calls)
    assert scalar(db, "SELECT count(*) FROM incident_pages WHERE incident_id = :i", i=inc.incident_id) == len(
        send.triggers())
    assert records.resolve(db, inc.incident_id, "asha.rao", "rotated to the hot spare; rate back at 97%", T0 + 6 * H)
    paging.escalate(db, T0 + 6 * H, send=send, post_slack=FakeSlack())
    paging.escalate(db, T0 + 6 * H + 5 * M, send=send, post_slack=FakeSlack())
    assert [r for r, a in send.closures() if a == "resolve"] == [
        "board", "ceo", "cto", "engineering_manager", "head_of_product", "primary", "secondary"]


def test_unacknowledged_p0_climbs_the_engineering_chain(db):
    send = FakePagerDuty()
    records.record_alert(db, _alert("P0", "Sending number +918000000001 stopped with 500 messages still queued"),
                         DAY, T0)
    got = _run_until(db, send, T0, T0 + 2 * H)
    assert [(o, r) for o, r, _ in got] == [(0 * M, "primary"), (5 * M, "secondary"), (30 * M, "engineering_manager"),
                                           (H, "cto")]


def test_compliance_incident_pages_legal_and_the_compliance_officer_at_once(db):
    send = FakePagerDuty()
    inc = records.record_alert(db, _alert("P0", "SEBI disclaimer missing from 12 sent messages"), DAY, T0)
    assert inc.category == "compliance" and inc.postmortem_due_at == T0 + 48 * H  # runbook 001: critical
    got = _run_until(db, send, T0, T0 + 15 * M)
    assert sorted((o, r) for o, r, _ in got if o == 0 * M) == [(0 * M, "compliance_officer"), (0 * M, "legal"),
                                                             (0 * M, "primary")]
    assert (15 * M, "ceo", "compliance:ceo") in got
    legal = next(c for c in send.calls if c["role"] == "legal")
    assert legal["dedup_key"] == f"incident-{inc.incident_id}-legal" and legal["severity"] == "critical"
    assert legal["details"]["category"] == "compliance"


def test_no_page_is_sent_twice_when_escalate_runs_twice_or_concurrently(db):
    send = FakePagerDuty(delay_s=0.2)
    records.record_alert(db, _alert("P0", "delivery rate 85% below the critical threshold"), DAY, T0)
    now = T0 + 2 * H
    barrier, errors = threading.Barrier(3), []

    def run():
        barrier.wait()
        try:
            paging.escalate(db, now, send=send, post_slack=FakeSlack())
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    keys = [(c["role"], c["details"]["step"]) for c in send.triggers()]
    assert len(keys) == len(set(keys)) == scalar(db, "SELECT count(*) FROM incident_pages")
    assert {"primary", "secondary", "engineering_manager", "cto", "ceo", "board", "head_of_product"} == {
        r for r, _ in keys}
    again = paging.escalate(db, now, send=send, post_slack=FakeSlack())
    assert again.sent == [] and len(send.calls) == len(keys)


def test_a_failed_send_is_not_recorded_and_is_paged_by_the_next_run(db):
    send = FakePagerDuty(fail_first=1)
    inc = records.record_alert(db, _alert("P1", "Task failed: delivery_fanout.send_shard"), DAY, T0)
    with pytest.raises(RuntimeError, match="not sent"):
        paging.escalate(db, T0, send=send, post_slack=FakeSlack())
    assert scalar(db, "SELECT count(*) FROM incident_pages") == 0
    assert paging.escalate(db, T0 + 5 * M, send=send, post_slack=FakeSlack()).sent
    assert send.roles() == ["primary", "secondary"]
    assert rows(db, "SELECT role, dedup_key FROM incident_pages ORDER BY role")[0] == (
        "primary", f"incident-{inc.incident_id}-primary")


def test_a_role_without_a_routing_key_is_a_timeline_entry_and_a_slack_post(db):
    roster.edit_role(db, "secondary", {"routing_key": roster.CLEAR}, "secondary rota gap this week", "ops.lead")
    send, slack = FakePagerDuty(), FakeSlack()
    inc = records.record_alert(db, _alert("P1", "Task failed: post_delivery_report.check_sla_0605"), DAY, T0)
    result = paging.escalate(db, T0 + 6 * M, send=send, post_slack=slack)
    assert send.roles() == ["primary"]
    assert result.not_paged == [{"incident_id": inc.incident_id, "role": "secondary", "step": "time:secondary",
                                 "why": "no routing key"}]
    texts = [e["text"] for e in records.timeline(db, inc.incident_id)]
    assert "not paged: no routing key for secondary" in texts
    assert len(slack.posts) == 1 and slack.posts[0].facts["incident_id"] == inc.incident_id
    # the Slack post is about this incident: recorded on its timeline, never a new incident
    records.record_alert(db, slack.posts[0], DAY, T0 + 6 * M)
    assert scalar(db, "SELECT count(*) FROM incidents") == 1
    paging.escalate(db, T0 + 20 * M, send=send, post_slack=slack)
    assert len(slack.posts) == 1  # told once


def test_automatic_resolution_stops_every_page(db):
    send = FakePagerDuty()
    inc = records.record_alert(db, _alert("P0", "delivery rate 89% below the critical threshold"), DAY, T0)
    paging.escalate(db, T0, send=send, post_slack=FakeSlack())
    assert records.resolve_when_clear(db, "delivery_rate", DAY, False, T0 + 10 * M) == []
    assert records.resolve_when_clear(db, "delivery_rate", DAY, True, T0 + 20 * M,
                                      how="automatic: delivery recovered to 97%") == [inc.incident_id]
    before = len(send.triggers())
    _run_until(db, send, T0 + 25 * M, T0 + 5 * H, step=30 * M)
    assert len(send.triggers()) == before  # nobody paged any more; each paged role's alert resolved once
    assert send.closures() == [("cto", "resolve"), ("engineering_manager", "resolve"), ("primary", "resolve")]
    got = records.get(db, inc.incident_id)
    assert got.resolved_by == "automatic" and got.resolved_how == "automatic: delivery recovered to 97%"
    tl = records.timeline(db, inc.incident_id)
    assert [e["text"] for e in tl if e["kind"] == "resolved"] == [
        "resolved by automatic: automatic: delivery recovered to 97%"]
    assert sum("resolve sent" in e["text"] for e in tl) == 3
    assert not records.resolve(db, inc.incident_id, "asha", "again", T0 + H)  # already resolved


def test_postmortem_due_dates_and_one_overdue_reminder(db):
    ops = records.record_alert(db, _alert("P0", "no active primary sending number"), DAY, T0)
    sebi = records.record_alert(db, _alert("P0", "SEBI violation: banned claim sent"), DAY, T0)
    p1 = records.record_alert(db, _alert("P1", "hot spare +918000000005 is YELLOW/CONNECTED"), DAY, T0)
    assert (ops.postmortem_due_at, sebi.postmortem_due_at, p1.postmortem_due_at) == (T0 + 24 * H, T0 + 48 * H, None)

    assert paging.remind_overdue_postmortems(db, T0 + 23 * H, post_slack=FakeSlack()) == []
    assert paging.remind_overdue_postmortems(db, T0 + 25 * H, post_slack=FakeSlack(ok=False)) == []  # retried
    slack = FakeSlack()
    assert paging.remind_overdue_postmortems(db, T0 + 25 * H, post_slack=slack) == [ops.incident_id]
    assert paging.remind_overdue_postmortems(db, T0 + 26 * H, post_slack=slack) == []
    assert paging.remind_overdue_postmortems(db, T0 + 49 * H, post_slack=slack) == [sebi.incident_id]
    assert [p.facts["incident_id"] for p in slack.posts] == [ops.incident_id, sebi.incident_id]
    assert [e["kind"] for e in records.timeline(db, ops.incident_id)].count("reminder") == 1


# -- the DAGs ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dags():
    from tests.support import load_dag

    return {d: load_dag(d) for d in ("incident_escalation", "ops_edit_oncall_roster")}


@pytest.fixture
def fake_pagerduty(monkeypatch):
    """include.paging.pagerduty as the paging step imports it lazily, replaced by a recorder."""
    send = FakePagerDuty()
    module = types.ModuleType("include.paging.pagerduty")
    module.send_event = send
    if "include.paging" not in sys.modules:
        try:
            import include.paging  # noqa: F401 - the real package, once the transport lands
        except ImportError:
            monkeypatch.setitem(sys.modules, "include.paging", types.ModuleType("include.paging"))
    monkeypatch.setitem(sys.modules, "include.paging.pagerduty", module)
    return send


def test_incident_escalation_dag_pages_and_a_rerun_pages_nobody(dags, db, airflow_db, fake_pagerduty):
    now = dt.datetime.now(dt.UTC)
    inc = records.record_alert(db, _alert("P0", "Delivery SLA missed: 91% accepted within 5 min"), DAY,
                               now - 2 * H)
    dag = dags["incident_escalation"]
    assert dag.test().state == "success"
    assert fake_pagerduty.roles() == ["cto", "engineering_manager", "primary", "secondary"]
    assert dag.test().state == "success"
    assert len(fake_pagerduty.calls) == 4
    assert scalar(db, "SELECT count(*) FROM incident_pages WHERE incident_id = :i", i=inc.incident_id) == 4


def _run(dag, conf):
    try:
        return dag.test(run_conf=conf).state
    except Exception as exc:  # noqa: BLE001 - Param validation may reject the conf before the run
        return f"rejected: {exc}"


def test_ops_edit_oncall_roster_changes_the_roster_audited(dags, db, airflow_db):
    dag = dags["ops_edit_oncall_roster"]
    new_key = "Q" * 28 + "9z8Y"
    state = _run(dag, {"role": "primary", "person": "Rahul Das", "routing_key": new_key, "slack_channel": "",
                       "active": "keep", "reason": "weekly rota handover"})
    assert state == "success"
    person, channel, key, active = rows(db, "SELECT person, slack_channel, pagerduty_routing_key, active "
                                            "FROM oncall_roles WHERE role = 'primary'")[0]
    assert (person, channel, key, active) == ("Rahul Das", "#oncall-primary", new_key, True)
    action, target, reason, details = rows(db, "SELECT action, target, reason, details FROM audit_log")[0]
    assert (action, target, reason) == ("edit_oncall_roster", "primary", "weekly rota handover")
    assert details["changed"]["routing_key"] == [f"…{oncall_routing_key('primary')[-4:]}", "…9z8Y"]
    assert new_key not in str(details) and details["changed"]["person"] == ["Asha Rao", "Rahul Das"]

    assert _run(dag, {"role": "board", "active": "inactive", "reason": "board notified by email"}) == "success"
    assert scalar(db, "SELECT active FROM oncall_roles WHERE role = 'board'") is False


@pytest.mark.parametrize("conf", [
    {"role": "primary", "routing_key": "too-short", "reason": "rota"},
    {"role": "primary", "slack_channel": "no-hash", "reason": "rota"},
    {"role": "primary", "person": "X", "reason": ""},
    {"role": "janitor", "person": "X", "reason": "rota"},
])
def test_ops_edit_oncall_roster_bad_parameters_change_nothing(dags, db, airflow_db, conf):
    before = rows(db, "SELECT * FROM oncall_roles ORDER BY role")
    assert _run(dags["ops_edit_oncall_roster"], conf) != "success"
    assert rows(db, "SELECT * FROM oncall_roles ORDER BY role") == before
    assert scalar(db, "SELECT count(*) FROM audit_log") == 0
