"""The plain functions behind the human-in-the-loop tasks, against PostgreSQL: an incident's acknowledgement request
and answer (incident_acknowledgement), and the approvers' 21:30 bulk-approval offer (nightly_bulk_approval_offer).
The HITL tasks themselves wait for a person through the real scheduler and api-server: see
tests/e2e/test_stack_human_decisions.py."""
from __future__ import annotations

import datetime as dt

import pytest

from devtools.demo_world import seed_oncall_roster
from include.core.alerting import Alert, RunRef, Severity
from include.incidents import acknowledgement as ack
from include.incidents import paging, records
from tests.e2e.test_incidents import FakePagerDuty, FakeSlack
from tests.world import rows, scalar

pytestmark = pytest.mark.e2e

DAY = dt.date(2026, 12, 1)
T0 = dt.datetime(2026, 12, 1, 0, 35, tzinfo=dt.UTC)
M = dt.timedelta(minutes=1)


@pytest.fixture
def db(app_db):
    with app_db.begin() as conn:
        seed_oncall_roster(conn)
    return app_db


def _incident(db, title="Sending number +918000000001 stopped with 500 messages still queued", severity="P0",
              day=DAY):
    return records.record_alert(db, Alert(Severity(severity), title, {}, RunRef("delivery_fanout", "send_shard", "x")),
                                day, T0)


def _answer(choice, by="asha", note=""):
    return {"chosen_options": [choice], "params_input": {"note": note},
            "responded_by_user": {"id": "3", "name": by} if by else None}


def test_one_request_per_open_unacknowledged_incident(db):
    first, second = _incident(db), _incident(db, day=DAY + dt.timedelta(days=1))
    made = []

    def trigger(incident_id):
        made.append(incident_id)
        return ack.run_id_for(incident_id)

    out = ack.request_acknowledgements(db, trigger, T0 + M)
    assert sorted(out["requested"]) == sorted([first.incident_id, second.incident_id]) and out["failed"] == []
    assert ack.request_acknowledgements(db, trigger, T0 + 6 * M)["requested"] == []  # asked once
    assert len(made) == 2
    entry = [e for e in records.timeline(db, first.incident_id) if e["kind"] == "ack_request"][0]
    assert entry["details"]["run_id"] == f"incident-{first.incident_id}"
    assert entry["details"]["url"].endswith(
        f"/dags/incident_acknowledgement/runs/incident-{first.incident_id}/tasks/acknowledge_in_airflow_ui"
        "/required_actions")


def test_a_failed_request_is_made_again_at_the_next_run(db):
    inc = _incident(db)

    def down(_):
        raise ConnectionError("api-server unreachable")

    out = ack.request_acknowledgements(db, down, T0 + M)
    assert out["requested"] == [] and out["failed"][0]["incident_id"] == inc.incident_id
    assert ack.request_acknowledgements(db, ack.run_id_for, T0 + 6 * M)["requested"] == [inc.incident_id]


def test_an_acknowledged_or_resolved_incident_is_not_asked_about(db):
    acked, resolved = _incident(db), _incident(db, day=DAY + dt.timedelta(days=1))
    records.acknowledge(db, acked.incident_id, "ravi", "pagerduty", T0 + M)
    records.resolve(db, resolved.incident_id, "ravi", "fixed", T0 + M)
    assert ack.request_acknowledgements(db, ack.run_id_for, T0 + 2 * M)["requested"] == []
    assert ack.describe(db, acked.incident_id) is None and ack.describe(db, resolved.incident_id) is None
    with pytest.raises(ValueError, match="does not exist"):
        ack.describe(db, 999_999)


def test_acknowledging_in_the_ui_stops_the_time_ladder(db):
    inc = _incident(db)
    send = FakePagerDuty()
    paging.escalate(db, T0, send=send, post_slack=FakeSlack())
    shown = ack.describe(db, inc.incident_id)
    assert shown["subject"].startswith(f"P0 incident #{inc.incident_id}") and "500 messages" in shown["body"]

    out = ack.record_answer(db, inc.incident_id, _answer(ack.ACKNOWLEDGE, note="rotating to the spare"), T0 + 3 * M)
    assert out["acknowledged"] and out["first_acknowledgement"] and not out["resolved"]
    got = records.get(db, inc.incident_id)
    assert (got.acknowledged_by, got.acknowledged_via) == ("asha", "airflow-ui")
    paging.escalate(db, T0 + 2 * dt.timedelta(hours=1), send=send, post_slack=FakeSlack())
    assert send.roles() == ["primary"]  # no secondary, engineering manager or CTO after the acknowledgement
    assert ("primary", "acknowledge") in send.closures()  # PagerDuty hears of it
    texts = [e["text"] for e in records.timeline(db, inc.incident_id)]
    assert "acknowledged by asha via airflow-ui" in texts and "note from asha: rotating to the spare" in texts


def test_acknowledge_and_resolve_closes_the_incident(db):
    inc = _incident(db)
    out = ack.record_answer(db, inc.incident_id, _answer(ack.ACK_AND_RESOLVE, note="false alarm: test number"),
                            T0 + M)
    assert out["resolved"]
    got = records.get(db, inc.incident_id)
    assert not got.is_open and got.resolved_how == "false alarm: test number" and got.resolved_by == "asha"


def test_a_decline_and_a_lapse_leave_it_escalating(db):
    inc = _incident(db)
    assert not ack.record_answer(db, inc.incident_id, _answer(ack.LEAVE, by="ravi", note="not mine"),
                                 T0 + M)["acknowledged"]
    assert not ack.record_answer(db, inc.incident_id, _answer(ack.LEAVE, by=None), T0 + 4 * 60 * M)["acknowledged"]
    got = records.get(db, inc.incident_id)
    assert got.acknowledged_at is None and got.is_open
    texts = [e["text"] for e in records.timeline(db, inc.incident_id) if e["kind"] == "ack_request"]
    assert texts[0] == "ravi declined the acknowledgement in the Airflow UI: not mine; the ladders go on"
    assert "lapsed unanswered after 240 min" in texts[1]
    with pytest.raises(ValueError, match="not one of"):
        ack.record_answer(db, inc.incident_id, _answer("Snooze"), T0)


# -- the approvers' 21:30 offer -------------------------------------------------------------------------------------
def _pending_packs(db, day):
    """Tomorrow's packs: the demo world seeds them pending with risk levels 1..4."""
    from tests.world import seed

    seed(db, advisors=40, day=day)
    return rows(db, "SELECT pack_id, pack_key, risk_level FROM content_packs WHERE business_date = :d "
                    "AND status = 'pending' AND NOT is_evergreen_fallback ORDER BY pack_id", d=day)


@pytest.mark.parametrize("max_risk, expected", [
    (2, ["Approve all low-risk (risk 1-2)", "Approve risk 1 only", "Leave for one-by-one review"]),
    (1, ["Approve risk 1 only", "Leave for one-by-one review"]),
    (3, ["Approve all low-risk (risk 1-3)", "Approve all low-risk (risk 1-2)", "Approve risk 1 only",
         "Leave for one-by-one review"]),
])
def test_the_offer_choices_and_their_risk_ceiling(max_risk, expected):
    from include.content import bulk_approval_offer as offer

    assert offer.options(max_risk) == expected
    assert [offer.ceiling_for(o, max_risk) for o in expected] == list(range(max_risk, 0, -1)) + [None]
    with pytest.raises(ValueError, match="not one of"):
        offer.ceiling_for("Approve everything", max_risk)


def test_the_answer_approves_exactly_the_offered_packs_audited(db, sandbox):
    from include.content import bulk_approval_offer as offer

    day = DAY + dt.timedelta(days=1)
    pending = _pending_packs(db, day)
    low = [p for p in pending if p.risk_level <= 2]
    assert low and len(low) < len(pending), "the world must have low- and higher-risk pending packs"
    made = offer.build_offer(db, day)
    assert sorted(made["pack_ids"]) == sorted(p.pack_id for p in low)
    assert made["riskier_pending"] == len(pending) - len(low) and str(day) in made["subject"]

    # A pack submitted after the offer was not seen by the approvers: their answer does not approve it.
    late = low[0]
    made["pack_ids"] = [i for i in made["pack_ids"] if i != late.pack_id]
    out = offer.apply_answer(db, made, {"chosen_options": ["Approve all low-risk (risk 1-2)"],
                                        "params_input": {"reason": "routine market notes"},
                                        "responded_by_user": {"id": "5", "name": "compliance.meera"}})
    assert sorted(out["approved"]) == sorted(p.pack_key for p in low if p.pack_id != late.pack_id)
    assert scalar(db, "SELECT status FROM content_packs WHERE pack_id = :i", i=late.pack_id) == "pending"
    assert scalar(db, "SELECT count(*) FROM content_packs WHERE business_date = :d AND status = 'pending' "
                      "AND risk_level > 2", d=day) == len(pending) - len(low)
    audit = rows(db, "SELECT actor, reason, details FROM audit_log WHERE action = 'bulk_approve_pack'")
    assert len(audit) == len(out["approved"])
    assert {(a.actor, a.reason) for a in audit} == {("compliance.meera", "routine market notes")}
    approvers = [p for p in sandbox.slack_posts() if p["hook"] == "approvers"]
    assert any(f"{len(out['approved'])} packs approved by compliance.meera" in p["payload"]["text"]
               for p in approvers)


def test_risk_1_only_and_no_answer(db, sandbox):
    from include.content import bulk_approval_offer as offer

    day = DAY + dt.timedelta(days=1)
    pending = _pending_packs(db, day)
    made = offer.build_offer(db, day)
    out = offer.apply_answer(db, made, {"chosen_options": ["Approve risk 1 only"], "params_input": {},
                                        "responded_by_user": {"name": "compliance.meera"}})
    assert sorted(out["approved"]) == sorted(p.pack_key for p in pending if p.risk_level == 1)
    assert "Approve risk 1 only" in scalar(db, "SELECT reason FROM audit_log ORDER BY audit_id DESC LIMIT 1")

    again = offer.build_offer(db, day)
    nothing = offer.apply_answer(db, again, {"chosen_options": [offer.LEAVE], "params_input": {},
                                             "responded_by_user": None})
    assert nothing["approved"] == [] and nothing["decided_by"] is None
    assert scalar(db, "SELECT count(*) FROM content_packs WHERE business_date = :d AND status = 'pending' "
                      "AND risk_level = 2", d=day) == sum(p.risk_level == 2 for p in pending)
    assert any("no answer within 90 min" in str(p["payload"]) for p in sandbox.slack_posts())


# -- ops_security_incident -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suspected, first", [
    ("whatsapp_token", {"WhatsApp Cloud API access token (system user)"}),
    ("app_secret", {"Meta app secret (X-Hub-Signature-256 of webhooks)", "Webhook verify token"}),
])
def test_the_rotation_checklist_puts_the_suspected_secrets_first(suspected, first):
    from include.incidents.security_breach import inventory, rotation_checklist

    items = rotation_checklist(suspected, lambda conn_id: conn_id == "whatsapp_cloud")
    now = [i["name"] for i in items if i["priority"] == "rotate now"]
    assert set(now) == first and [i["name"] for i in items[:len(now)]] == now
    assert len(items) == len(inventory())
    token = next(i for i in items if i["name"].startswith("WhatsApp Cloud API"))
    assert token["configured here"] == "yes"
    assert next(i for i in items if i["conn_id"] is None)["configured here"] == "setting (not a connection)"
    assert all(i["priority"] == "rotate now" for i in rotation_checklist("unknown", lambda c: False))
    with pytest.raises(ValueError, match="not one of"):
        rotation_checklist("the printer", lambda c: True)


def test_ops_security_incident_pauses_records_and_lists(db, airflow_db, sandbox, tmp_path, monkeypatch):
    from tests.support import load_dag

    monkeypatch.setenv("FA_DATA_DIR", str(tmp_path))
    dag = load_dag("ops_security_incident")
    run = dag.test(run_conf={"what_happened": "access token pasted in a public chat at 09:10",
                             "suspected": "whatsapp_token"})
    assert run.state == "success"
    assert scalar(db, "SELECT paused FROM ops_controls WHERE control = 'sending'") is True
    inc = rows(db, "SELECT incident_id, severity, category, postmortem_due_at - opened_at AS due FROM incidents "
                   "WHERE category = 'security'")
    assert len(inc) == 1 and inc[0].severity == "P0" and inc[0].due == dt.timedelta(hours=48)
    timeline = [e["text"] for e in records.timeline(db, inc[0].incident_id)]
    assert any("reported a suspected breach (WhatsApp access token)" in t for t in timeline)
    checklist = next(t for t in timeline if t.startswith("rotation checklist written: "))
    md = checklist.split(": ", 1)[1]
    assert "[ ] **WhatsApp Cloud API access token (system user)** (rotate now" in open(md.removeprefix("file://"))\
        .read()
    audit = rows(db, "SELECT actor, action, reason FROM audit_log WHERE action = 'pause_sending'")
    assert len(audit) == 1 and audit[0].reason.startswith("security incident: access token pasted")
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any(t.startswith("[P0]") and "Security incident #" in t for t in posts)


@pytest.mark.parametrize("conf", [{"what_happened": "hm", "suspected": "unknown"},
                                  {"what_happened": "a long enough report", "suspected": "the printer"}])
def test_ops_security_incident_bad_input_changes_nothing(db, airflow_db, sandbox, conf):
    from tests.e2e.test_incidents import _run
    from tests.support import load_dag

    assert _run(load_dag("ops_security_incident"), conf) != "success"
    assert scalar(db, "SELECT count(*) FROM incidents WHERE category = 'security'") == 0
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE action = 'pause_sending'") == 0
