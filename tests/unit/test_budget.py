"""The spend budget: the pure verdict and projection (table-driven), and the ledger fed from stored status webhooks
(set-based, idempotent: one bill per message however many statuses carry pricing) against the real schema."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from include.delivery import budget
from include.delivery.budget import Level, PlanLine

D = Decimal


# -- pure policy ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spent, limit, info, overridden, level, stops, ratio", [
    (0, 1000, 0.9, False, Level.OK, False, 0.0),
    (899.99, 1000, 0.9, False, Level.OK, False, 0.89999),
    (900, 1000, 0.9, False, Level.INFO, False, 0.9),         # info at exactly 90%
    (999.99, 1000, 0.9, False, Level.INFO, False, 0.99999),
    (1000, 1000, 0.9, False, Level.STOP, True, 1.0),          # stop at exactly 100%
    (1500, 1000, 0.9, False, Level.STOP, True, 1.5),
    (1500, 1000, 0.9, True, Level.STOP, False, 1.5),          # an override keeps sending past the budget
    (500, 1000, 0.5, False, Level.INFO, False, 0.5),          # the info ratio is a setting
    (10**9, 0, 0.9, False, Level.OK, False, 0.0),             # budget 0: none set
])
def test_period_verdict(spent, limit, info, overridden, level, stops, ratio):
    v = budget.period_verdict("daily", spent, limit, info, overridden)
    assert v.level is level and v.stops is stops
    assert v.ratio == pytest.approx(ratio, abs=1e-4)


@pytest.mark.parametrize("args, message", [
    (("weekly", 1, 10, 0.9), "unknown budget period"),
    (("daily", 1, 10, 0), "info ratio"),
    (("daily", 1, 10, 1.5), "info ratio"),
    (("daily", -1, 10, 0.9), "cannot be negative"),
])
def test_period_verdict_refuses_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        budget.period_verdict(*args)


@pytest.mark.parametrize("day, month, overridden, stops, infos", [
    (100, 1000, (), [], []),
    (950, 1000, (), [], ["daily"]),
    (1000, 1000, (), ["daily"], []),
    (100, 20000, (), ["monthly"], []),
    (1000, 20000, (), ["daily", "monthly"], []),
    (1000, 20000, ("daily",), ["monthly"], ["daily"]),      # the overridden one is reported, not stopped on
    (1000, 19000, ("daily", "monthly"), [], ["daily", "monthly"]),
])
def test_verdict_over_both_periods(day, month, overridden, stops, infos):
    v = budget.verdict(day, month, 1000, 20000, 0.9, overridden)
    assert [p.period for p in v.stops] == stops
    assert [p.period for p in v.infos] == infos


@pytest.mark.parametrize("lines, day, month, fallback, planned, day_inr, month_inr, unpriced", [
    ([], 0, 0, 1, 0, D(0), D(0), {}),
    ([PlanLine("marketing", 1000, D("0.8631"))], 0, 0, 1, 1000, D("863.1"), D("863.1"), {}),
    ([PlanLine("marketing", 1000, D("0.8631")), PlanLine("utility", 200, D("0.115"))], D("10"), D("5000"), 1,
     1200, D("896.1"), D("5886.1"), {}),
    # a category without a rate is projected at the dearest rate, and named
    ([PlanLine("marketing_lite", 100, None)], 0, D("1"), D("0.8631"), 100, D("86.31"), D("87.31"),
     {"marketing_lite": 100}),
])
def test_projection(lines, day, month, fallback, planned, day_inr, month_inr, unpriced):
    p = budget.project(lines, day, month, fallback)
    assert (p.planned_messages, p.day_inr, p.month_inr, p.unpriced) == (planned, day_inr, month_inr, unpriced)


def test_projection_refuses_a_negative_count():
    with pytest.raises(ValueError, match="utility.*negative"):
        budget.project([PlanLine("utility", -1, D(1))], 0, 0, 1)


def test_periods_start_on_the_day_and_the_first_of_the_month():
    day = dt.date(2026, 12, 17)
    assert budget.period_start("daily", day) == day
    assert budget.period_start("monthly", day) == dt.date(2026, 12, 1)


# -- the ledger, against PostgreSQL ----------------------------------------------------------------------------
def _status(engine, wamid, status, ts, pricing=None, **extra):
    payload = {"id": wamid, "status": status, "timestamp": str(int(ts.timestamp())), **extra}
    if pricing is not None:
        payload["pricing"] = pricing
    with (engine.begin() if isinstance(engine, sa.Engine) else contextlib.nullcontext(engine)) as c:
        c.execute(sa.text("INSERT INTO webhook_events (dedupe_key, kind, wamid, status, event_ts, payload, raw_body, "
                          "signature_valid) VALUES (:k, 'status', :w, :s, :ts, CAST(:p AS jsonb), '', true)"),
                  {"k": f"s:{wamid}:{status}:{ts.timestamp()}", "w": wamid, "s": status, "ts": ts,
                   "p": json.dumps(payload)})


def _pricing(category="marketing", billable=True, type_="regular"):
    return {"billable": billable, "pricing_model": "PMP", "type": type_, "category": category}


# 2026-12-01 23:00 UTC is 2026-12-02 04:30 IST: the spend belongs to the IST date.
T = dt.datetime(2026, 12, 1, 23, 0, tzinfo=dt.UTC)
IST_DAY = dt.date(2026, 12, 2)


def _ledger(engine):
    with engine.connect() as c:
        spend = {r.wamid: r for r in c.execute(sa.text("SELECT * FROM message_spend"))}
        daily = c.execute(sa.text("SELECT * FROM spend_daily ORDER BY business_date")).fetchall()
    return spend, daily


def test_ledger_bills_each_message_once_from_its_pricing_and_is_idempotent(app_db):
    _status(app_db, "wamid.A", "sent", T, _pricing())
    _status(app_db, "wamid.A", "delivered", T + dt.timedelta(seconds=1), _pricing())   # pricing again: no 2nd bill
    _status(app_db, "wamid.A", "read", T + dt.timedelta(seconds=2))
    _status(app_db, "wamid.B", "sent", T, _pricing("utility"))
    _status(app_db, "wamid.C", "sent", T, _pricing("utility", type_="free_customer_service"))  # free
    _status(app_db, "wamid.D", "sent", T, _pricing("marketing", billable=False))             # not billable
    _status(app_db, "wamid.E", "sent", T, _pricing("brand_new_category"))                    # no rate: unrated
    _status(app_db, "wamid.F", "failed", T, errors=[{"code": 131026}])                      # no pricing: no bill
    first = budget.refresh_ledger(app_db)
    assert first["recorded"] == 5
    spend, daily = _ledger(app_db)
    assert set(spend) == {"wamid.A", "wamid.B", "wamid.C", "wamid.D", "wamid.E"}
    assert spend["wamid.A"].inr == D("0.8631") and spend["wamid.A"].business_date == IST_DAY
    assert spend["wamid.B"].inr == D("0.1150")
    assert spend["wamid.C"].inr == 0 and not spend["wamid.C"].billable
    assert spend["wamid.D"].inr == 0 and not spend["wamid.D"].billable
    assert spend["wamid.E"].inr is None and spend["wamid.E"].billable
    [d] = daily
    assert (d.business_date, d.messages, d.billable, d.unrated, d.inr) == (IST_DAY, 5, 3, 1, D("0.9781"))

    # The same events read again (they are younger than the settling margin), and a late duplicate status:
    _status(app_db, "wamid.B", "delivered", T + dt.timedelta(seconds=3), _pricing("utility"))
    assert budget.refresh_ledger(app_db)["recorded"] == 0
    assert _ledger(app_db)[1] == daily

    with app_db.connect() as c:
        t = budget.totals(c, IST_DAY)
    assert (t.day_inr, t.month_inr, t.day_billable, t.month_unrated) == (D("0.9781"), D("0.9781"), 3, 1)
    assert budget.unrated_categories(app_db, IST_DAY) == [("brand_new_category", 1)]


def test_ledger_watermark_moves_past_settled_events_only(app_db, monkeypatch):
    _status(app_db, "wamid.A", "sent", T, _pricing())
    monkeypatch.setenv("FA_BUDGET_LEDGER_SETTLE_S", "3600")
    assert budget.refresh_ledger(app_db)["watermark"] == 0     # too young: read again next time
    monkeypatch.setenv("FA_BUDGET_LEDGER_SETTLE_S", "0")
    with app_db.connect() as c:
        top = c.execute(sa.text("SELECT max(event_id) FROM webhook_events")).scalar_one()
    assert budget.refresh_ledger(app_db)["watermark"] == top
    _status(app_db, "wamid.G", "sent", T, _pricing("authentication"))
    assert budget.refresh_ledger(app_db)["recorded"] == 1
    assert set(_ledger(app_db)[0]) == {"wamid.A", "wamid.G"}


def test_an_event_committed_after_a_refresh_read_past_it_is_billed_once_it_has_settled(app_db, monkeypatch):
    """A receiver transaction can commit after a refresh has read higher event ids: its events are not new any
    more, so they are billed by the settled pass, once the margin has passed, and only once."""
    monkeypatch.setenv("FA_BUDGET_LEDGER_SETTLE_S", "3600")
    late = app_db.connect()
    late_tx = late.begin()  # a receiver transaction that has taken its event id and not committed yet
    _status(late, "wamid.late", "sent", T, _pricing())
    _status(app_db, "wamid.on_time", "sent", T, _pricing())
    first = budget.refresh_ledger(app_db)
    assert first["recorded"] == 1 and first["watermark"] == 0
    late_tx.commit()
    late.close()
    with app_db.connect() as c:
        late_id = c.execute(sa.text("SELECT event_id FROM webhook_events WHERE wamid = 'wamid.late'")).scalar()
    assert late_id < first["read_through"]  # committed below what the first refresh read through
    assert budget.refresh_ledger(app_db)["recorded"] == 0     # not new, not settled yet
    with app_db.begin() as c:  # the margin has passed since the cutoff was taken
        c.execute(sa.text("UPDATE spend_watermark SET settle_cutoff_at = now() - interval '2 hours'"))
    settled = budget.refresh_ledger(app_db)
    assert settled["recorded"] == 1 and settled["watermark"] == first["read_through"]
    assert set(_ledger(app_db)[0]) == {"wamid.on_time", "wamid.late"}
    with app_db.begin() as c:
        c.execute(sa.text("UPDATE spend_watermark SET settle_cutoff_at = now() - interval '2 hours'"))
    assert budget.refresh_ledger(app_db)["recorded"] == 0     # read again, billed once


def test_one_refresh_serves_every_guard_within_the_interval(app_db):
    _status(app_db, "wamid.A", "sent", T, _pricing())
    assert budget.refresh_ledger(app_db, unless_within_s=60)["recorded"] == 1
    _status(app_db, "wamid.B", "sent", T, _pricing())
    assert budget.refresh_ledger(app_db, unless_within_s=60) is None   # refreshed a moment ago by someone
    assert budget.refresh_ledger(app_db)["recorded"] == 1              # without the interval: refreshed now


def test_a_month_sums_its_days_and_a_new_rate_applies_from_its_date(app_db):
    with app_db.begin() as c:
        c.execute(sa.text("INSERT INTO rate_card (category, pricing_model, inr_per_message, effective_from, source) "
                          "VALUES ('marketing', 'PMP', 1.0000, DATE '2026-12-10', 'test: a new card')"))
    _status(app_db, "wamid.old", "sent", dt.datetime(2026, 12, 5, 6, 0, tzinfo=dt.UTC), _pricing())
    _status(app_db, "wamid.new", "sent", dt.datetime(2026, 12, 12, 6, 0, tzinfo=dt.UTC), _pricing())
    _status(app_db, "wamid.nov", "sent", dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC), _pricing())
    budget.refresh_ledger(app_db)
    with app_db.connect() as c:
        t = budget.totals(c, dt.date(2026, 12, 12))
    assert t.day_inr == D("1.0000") and t.month_inr == D("1.8631")  # November is another month


def test_a_budget_stop_is_resumed_only_with_an_override_whatever_the_path(app_db, monkeypatch):
    """set_sending_paused is what ops_resume_sending and the cockpit's Resume button both call."""
    from include.delivery.kill_switch import set_sending_paused, sending_state

    monkeypatch.setenv("FA_BUDGET_DAILY_INR", "0.5")
    today = dt.datetime.now(dt.UTC)
    _status(app_db, "wamid.X", "sent", today, _pricing())
    with app_db.begin() as c:
        c.execute(sa.text("UPDATE ops_controls SET paused = true, cause = 'budget', reason = 'budget exceeded', "
                          "changed_by = 'budget_guard'"))
    for blank in (None, "", "   "):
        with pytest.raises(budget.BudgetOverrideRequired, match="budget override reason"):
            set_sending_paused(app_db, False, "resume please", "alice", budget_override=blank)
    assert sending_state(app_db).paused
    budget.refresh_ledger(app_db)
    state = set_sending_paused(app_db, False, "resume please", "alice", budget_override="CFO approved")
    assert not state.paused and state.cause == "operator" and state.budget_override[0]["period"] == "daily"
    # A later operator pause is the operator's, and its resume needs no override.
    assert set_sending_paused(app_db, True, "drill", "bob").cause == "operator"
    assert not set_sending_paused(app_db, False, "drill over", "bob").paused


def test_the_kill_switch_cause_is_operator_or_budget(app_db):
    with pytest.raises(sa.exc.IntegrityError, match="ops_controls_cause_known"), app_db.begin() as c:
        c.execute(sa.text("UPDATE ops_controls SET cause = 'gremlins'"))
