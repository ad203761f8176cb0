"""Advisor delay notices end to end (issue 17 §6, "a delay notice sent and then stopped on recovery"): the
advisor_delay_notices DAG under dag.test() against PostgreSQL, emails through Airflow's SmtpHook to the sandbox's
SMTP sink (a real SMTP server, read back over the sandbox's HTTP API), the status page under the data root.

Time is the DAG's `as_of` Param: 06:16 (late: first notice, with an ETA), 06:24 (nothing new: cadence), 06:31
(second notice), recovery (nothing more, the status page says all normal). The delivery states are set in the
database as the senders would leave them (their behaviour is tested elsewhere)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.advisor_notices import outbox
from include.core import storage
from include.core.config import IST
from include.delivery import kill_switch
from include.incidents import records
from tests.support import load_dag
from tests.world import DAY, planned_world, rows, scalar

pytestmark = pytest.mark.e2e

LATE = "wealth"


def at(hh: int, mm: int) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time(hh, mm), tzinfo=IST)


def _accept(engine, where: str, when: dt.datetime, **params) -> None:
    """Plan rows matching `where` (over p = delivery_plan) become accepted deliveries."""
    with engine.begin() as c:
        c.execute(sa.text(f"""
            INSERT INTO deliveries (idempotency_key, business_date, advisor_id, phone_number_id, to_phone,
                                    template_name, pack_id, status, attempts, wamid, accepted_at)
            SELECT CAST(p.business_date AS text) || ':' || p.advisor_id, p.business_date, p.advisor_id,
                   p.phone_number_id, a.phone_e164, p.template_name, p.pack_id, 'accepted', 1,
                   'wamid.test.' || p.advisor_id, :t
            FROM delivery_plan p JOIN advisors a ON a.advisor_id = p.advisor_id
            WHERE p.business_date = :d AND {where}
            ON CONFLICT (business_date, advisor_id) DO UPDATE
               SET status = 'accepted', wamid = EXCLUDED.wamid, accepted_at = EXCLUDED.accepted_at"""),
            {"d": DAY, "t": when, **params})


@pytest.fixture
def late_morning(app_db):
    """Three segments sent by 06:05; `wealth` half queued, half not queued yet. 150 messages accepted in the five
    minutes before 06:16 (0.5/s). One wealth advisor has no email, one is on the do-not-contact list since the
    plan was built. A P1 incident is open for the date."""
    planned_world(app_db, advisors=200)
    _accept(app_db, "p.segment <> :late", at(6, 5), late=LATE)
    with app_db.begin() as c:
        wealth = [r[0] for r in c.execute(sa.text(
            "SELECT p.advisor_id FROM delivery_plan p WHERE p.business_date = :d AND p.segment = :s "
            "ORDER BY p.advisor_id"), {"d": DAY, "s": LATE})]
        c.execute(sa.text("""
            INSERT INTO deliveries (idempotency_key, business_date, advisor_id, phone_number_id, to_phone, status)
            SELECT CAST(p.business_date AS text) || ':' || p.advisor_id, p.business_date, p.advisor_id,
                   p.phone_number_id, a.phone_e164, 'queued'
            FROM delivery_plan p JOIN advisors a ON a.advisor_id = p.advisor_id
            WHERE p.business_date = :d AND p.advisor_id = ANY(:ids)"""), {"d": DAY, "ids": wealth[::2]})
        some = c.execute(sa.text("SELECT advisor_id, phone_number_id FROM delivery_plan WHERE business_date = :d "
                                 "AND segment <> :s ORDER BY advisor_id LIMIT 1"), {"d": DAY, "s": LATE}).one()
        c.execute(sa.text("""
            INSERT INTO delivery_attempts (business_date, advisor_id, attempt_no, phone_number_id, outcome, at)
            SELECT :d, :a, 1, :pn, 'accepted', CAST(:t AS timestamptz) - make_interval(secs => n * 2 - 1)
            FROM generate_series(1, 150) AS n"""), {"d": DAY, "a": some.advisor_id, "pn": some.phone_number_id,
                                                     "t": at(6, 16)})
        no_email, dnc = wealth[1], wealth[3]
        c.execute(sa.text("UPDATE advisors SET contact_email = NULL WHERE advisor_id = :a"), {"a": no_email})
        c.execute(sa.text("INSERT INTO do_not_contact (phone_e164, reason, source) SELECT phone_e164, 'asked', "
                          "'operator' FROM advisors WHERE advisor_id = :a"), {"a": dnc})
    incident = records.open_or_join(app_db, records.dedup_key("delivery_rate", DAY), "P1", "delivery_rate",
                                    "Delivery rate 74% at 06:15", DAY, at(6, 15))
    eligible = set(wealth) - {dnc}
    return {"wealth": wealth, "eligible": eligible, "no_email": no_email, "dnc": dnc,
            "incident_id": incident.incident_id}


def _status(name: str) -> dict:
    base = Path(storage.data_root_url().removeprefix("file://")) / "status"
    return json.loads((base / name).read_text())


def _status_html(name: str) -> str:
    return (Path(storage.data_root_url().removeprefix("file://")) / "status" / name).read_text()


def _run(dag, as_of: dt.datetime) -> str:
    return dag.test(run_conf={"as_of": as_of.isoformat()}).state


def _notices(engine) -> list[tuple]:
    return [tuple(r) for r in rows(engine, "SELECT advisor_id, seq FROM advisor_notice_outbox ORDER BY 1, 2")]


def test_a_delay_notice_is_sent_every_15_minutes_and_stops_on_recovery(app_db, sandbox, airflow_db, late_morning):
    w = late_morning
    dag = load_dag("advisor_delay_notices")
    with_email = w["eligible"] - {w["no_email"]}
    sandbox.admin.post("/_sandbox/mail/faults", json={"fail_next": 1}).raise_for_status()

    # 06:16: wealth is late. One in-app notice per eligible advisor; emails to those with an address, the first
    # refused by the relay (451), recorded and left for the retry.
    assert _run(dag, at(6, 16)) == "success"
    assert _notices(app_db) == sorted((a, 1) for a in w["eligible"])
    assert w["dnc"] not in {a for a, _ in _notices(app_db)}
    mail = sandbox.mail()
    assert len(mail) == len(with_email) - 1
    failed = rows(app_db, "SELECT advisor_id, attempts, last_error FROM advisor_notice_emails WHERE status = 'failed'")
    assert len(failed) == 1 and failed[0].attempts == 1 and "451" in failed[0].last_error
    first = mail[0]
    assert first["subject"] == "Today's content pack is delayed"
    assert "Expected by 06:18 IST (at the current send rate)" in first["body"]  # ~50 unsent at 0.5/s
    assert f"INC-{w['incident_id']}" in first["body"]
    assert first["message_id"].startswith("<delay-notice-20261123-")
    assert scalar(app_db, "SELECT count(*) FROM advisor_notice_emails WHERE to_address IS NULL") == 0
    assert scalar(app_db, "SELECT count(*) FROM advisor_notice_outbox WHERE eta_basis = 'send_rate' "
                          "AND incident_id = :i", i=w["incident_id"]) == len(w["eligible"])
    status = _status("status.json")
    assert status["state"] == "delayed" and [s["segment"] for s in status["late_segments"]] == [LATE]
    assert status["incidents"][0]["incident_id"] == w["incident_id"]
    assert status["eta"]["basis"] == "send_rate"
    advisor = _status("advisor_status.json")
    assert advisor["state"] == "delayed" and advisor["delayed_segments"] == [{"name": "Wealth managers"}]
    assert "incident" not in json.dumps(advisor).lower() and "INC-" not in _status_html("advisor_status.html")

    # A retried run at the same moment creates nothing new, and sends the email that failed.
    assert _run(dag, at(6, 16)) == "success"
    assert len(_notices(app_db)) == len(w["eligible"])
    assert len(sandbox.mail()) == len(with_email)
    assert scalar(app_db, "SELECT count(*) FROM advisor_notice_emails WHERE status = 'sent'") == len(with_email)
    assert len({m["message_id"] for m in sandbox.mail()}) == len(with_email)

    # 06:24: still late, but the last notice is 8 minutes old: nothing new.
    assert _run(dag, at(6, 24)) == "success"
    assert len(_notices(app_db)) == len(w["eligible"])
    assert len(sandbox.mail()) == len(with_email)

    # One advisor's message is accepted before 06:31: they hear nothing more; everyone else gets notice 2.
    done = min(w["eligible"] - {w["no_email"]})
    _accept(app_db, "p.advisor_id = :a", at(6, 28), a=done)
    assert _run(dag, at(6, 31)) == "success"
    seconds = {a for a, seq in _notices(app_db) if seq == 2}
    assert seconds == w["eligible"] - {done}
    second_mail = sandbox.mail()[len(with_email):]
    assert sorted(m["rcpt_tos"][0] for m in second_mail) == sorted(
        r.contact_email for r in rows(app_db, "SELECT contact_email FROM advisors WHERE advisor_id = ANY(:a)",
                                      a=list(with_email - {done})))
    # No message accepted in the five minutes before 06:31: no estimate, and the notice says so.
    assert all("has not resumed yet" in m["body"] and "Next update by 06:46 IST" in m["body"] for m in second_mail)

    # Recovery: every wealth row accepted. No more notices; the status page says all normal.
    _accept(app_db, "p.segment = :s", at(6, 40), s=LATE)
    before = len(sandbox.mail())
    assert _run(dag, at(6, 46)) == "success"
    assert len(_notices(app_db)) == len(w["eligible"]) * 2 - 1
    assert len(sandbox.mail()) == before
    assert _status("status.json")["state"] == "normal" and _status("status.json")["late_segments"] == []
    assert _status("advisor_status.json")["state"] == "normal"
    assert "All normal" in _status_html("status.html") and "All normal" in _status_html("advisor_status.html")


def test_with_sending_paused_the_notice_promises_the_next_update_instead_of_an_eta(app_db, late_morning):
    kill_switch.set_sending_paused(app_db, True, "bad content in the wealth pack", "tests")
    result = outbox.notify(app_db, DAY, at(6, 20))
    assert result.eta_basis == "paused" and result.eta_at is None
    assert result.in_app_created == len(late_morning["eligible"])
    assert result.without_email == 1 and result.excluded_not_contactable == 1
    bodies = {r.body for r in rows(app_db, "SELECT body FROM advisor_notice_outbox")}
    assert len(bodies) == 1 and "Sending is paused" in bodies.pop()
    # A second call in the same cadence step (a retry, an overlapping run) adds nothing.
    again = outbox.notify(app_db, DAY, at(6, 22))
    assert (again.in_app_created, again.not_due) == (0, len(late_morning["eligible"]))


def test_emails_of_advisors_no_longer_affected_are_cancelled_not_sent_late(app_db, late_morning):
    outbox.notify(app_db, DAY, at(6, 16))

    class Unreachable:
        def __enter__(self):
            raise ConnectionRefusedError("relay down")

    down = outbox.send_emails(app_db, DAY, at(6, 16), late_morning["eligible"], Unreachable)
    assert down.sent == 0 and down.failed == len(late_morning["eligible"]) - 1
    assert scalar(app_db, "SELECT count(*) FROM advisor_notice_emails WHERE status = 'failed' "
                          "AND last_error LIKE 'cannot reach the SMTP relay%'") == down.failed
    _accept(app_db, "p.segment = :s", at(6, 18), s=LATE)
    later = outbox.notify(app_db, DAY, at(6, 20))
    assert later.late_segments == [] and later.affected_advisor_ids == []
    closed = outbox.send_emails(app_db, DAY, at(6, 20), set(later.affected_advisor_ids), Unreachable)
    assert closed.cancelled == down.failed and closed.sent == 0
