"""The spend budget (runbook 001 "budget exceeded but still sending", issue 18 §3).

Spend per message comes from what Meta bills: the `pricing` object of its status webhooks (category, billable,
pricing model; stored in `webhook_events.payload` by the receiver) times the INR rate card (`rate_card`). The
ledger `message_spend` bills each wamid once (sent and delivered/read both carry pricing) and keeps per-date
totals in `spend_daily` (sql/queries/budget/refresh_ledger.sql: set-based, idempotent, incremental).

The guard (`check_budget`) compares today's and this month's spend with FA_BUDGET_DAILY_INR and
FA_BUDGET_MONTHLY_INR: at FA_BUDGET_INFO_RATIO (90%) an info alert; at 100% the kill switch engages with cause
`budget` (senders stop within a second, rows stay queued) and a P0 goes to the approvers. Resuming a switch the
budget engaged needs an audited override (`grant_override`, called by kill_switch.set_sending_paused), which lets
sending go on past that budget for the rest of its period (the day or the month).

Where it runs during a fan-out: in every sender's slow control lane (fanout/control.py), every
FA_BUDGET_CHECK_S. That lane already talks to the database beside the pacing loop without delaying a send, and
the kill switch it engages is read by every sender's own 0.25 s poll. It stays cheap at 10k+ messages: the
ledger refresh reads only the webhook events past a watermark (the PK range), under a try-lock so one sender
refreshes while the others skip; the totals are a sum over at most 31 `spend_daily` rows. The in-window monitor
(monitoring.py) was not the place: it runs for the advisors' fan-out only and every 5 s, and the budget
concerns every send. Spend is known from webhooks, so a stop lands a webhook delay (about a second) after the
budget is crossed: the overshoot is the messages accepted in that second, at most one number's throughput.

The 05:50 check (`projection_check`) projects today's spend from the plan (unsent planned rows x the rate of
their template's category) on top of today's and this month's spend so far, and warns (P1) before 06:00.

The pure parts (`period_verdict`, `verdict`, `project`) know nothing of the database and are table-tested.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from include.core import config
from include.core.alerting import Alert, RunRef, Severity
from include.core.db import query

log = logging.getLogger(__name__)

GUARD_ACTOR = "budget_guard"
PERIODS = ("daily", "monthly")
_LEDGER_LOCK = "spend_ledger_refresh"


# -- pure policy ---------------------------------------------------------------------------------------------
class Level(StrEnum):
    OK = "ok"
    INFO = "info"      # at or past the info ratio (90%)
    STOP = "stop"      # at or past the budget (100%)


def _money(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True)
class PeriodVerdict:
    period: str               # 'daily' or 'monthly'
    spent: Decimal
    budget: Decimal           # 0 or less: no budget set for the period
    ratio: float
    level: Level
    overridden: bool = False  # an operator allowed sending past this budget for the period

    @property
    def stops(self) -> bool:
        return self.level is Level.STOP and not self.overridden

    def describe(self) -> str:
        if self.budget <= 0:
            return f"{self.period}: ₹{self.spent:,.2f} spent (no budget set)"
        return f"{self.period}: ₹{self.spent:,.2f} of ₹{self.budget:,.2f} ({self.ratio:.0%})" + (
            " — overridden" if self.overridden else "")


def ratio(spent: object, budget: object) -> float:
    """Spend as a fraction of its budget; a budget of 0 or less means none is set (ratio 0)."""
    b = _money(budget)
    return float(_money(spent) / b) if b > 0 else 0.0


def period_verdict(period: str, spent: object, budget: object, info_ratio: float,
                   overridden: bool = False) -> PeriodVerdict:
    if period not in PERIODS:
        raise ValueError(f"unknown budget period {period!r} (expected one of {', '.join(PERIODS)})")
    if not 0 < info_ratio <= 1:
        raise ValueError(f"the info ratio must be in (0, 1], got {info_ratio}")
    s, b = _money(spent), _money(budget)
    if s < 0:
        raise ValueError(f"{period} spend cannot be negative (₹{s})")
    r = ratio(s, b)
    level = Level.OK if b <= 0 else Level.STOP if s >= b else Level.INFO if r >= info_ratio else Level.OK
    return PeriodVerdict(period, s, b, r, level, overridden)


@dataclass(frozen=True)
class Verdict:
    periods: tuple[PeriodVerdict, ...]

    @property
    def stops(self) -> list[PeriodVerdict]:
        return [p for p in self.periods if p.stops]

    @property
    def infos(self) -> list[PeriodVerdict]:
        """Periods worth an info alert: past the info ratio, or past a budget an operator overrode."""
        return [p for p in self.periods if p.level is Level.INFO or (p.level is Level.STOP and p.overridden)]

    @property
    def exceeded(self) -> list[PeriodVerdict]:
        return [p for p in self.periods if p.level is Level.STOP]


def verdict(day_spent: object, month_spent: object, daily_budget: object, monthly_budget: object,
            info_ratio: float, overridden: Iterable[str] = ()) -> Verdict:
    """Today's and this month's spend against their budgets."""
    over = set(overridden)
    return Verdict((period_verdict("daily", day_spent, daily_budget, info_ratio, "daily" in over),
                    period_verdict("monthly", month_spent, monthly_budget, info_ratio, "monthly" in over)))


@dataclass(frozen=True)
class PlanLine:
    category: str
    messages: int
    rate: Decimal | None      # None: the rate card has no rate for the category


@dataclass(frozen=True)
class Projection:
    planned_messages: int
    planned_inr: Decimal
    day_inr: Decimal          # today so far + the plan
    month_inr: Decimal        # this month so far (today included) + the plan
    unpriced: dict[str, int] = field(default_factory=dict)  # categories priced at the fallback rate


def project(lines: Iterable[PlanLine], day_spent: object, month_spent: object,
            fallback_rate: object) -> Projection:
    """Today's and this month's spend if the plan is sent: planned messages x their category's rate, a category
    without a rate at `fallback_rate` (the dearest on the card: a projection must not err low)."""
    planned, cost, unpriced = 0, Decimal(0), {}
    for line in lines:
        if line.messages < 0:
            raise ValueError(f"plan line {line.category}: negative message count {line.messages}")
        rate = line.rate
        if rate is None:
            unpriced[line.category] = unpriced.get(line.category, 0) + line.messages
            rate = _money(fallback_rate)
        planned += line.messages
        cost += _money(rate) * line.messages
    return Projection(planned, cost, _money(day_spent) + cost, _money(month_spent) + cost, unpriced)


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def period_start(period: str, day: dt.date) -> dt.date:
    return day if period == "daily" else month_start(day)


def budgets() -> tuple[Decimal, Decimal, float]:
    return (_money(config.BUDGET_DAILY_INR), _money(config.BUDGET_MONTHLY_INR), float(config.BUDGET_INFO_RATIO))


# -- the ledger ----------------------------------------------------------------------------------------------
def refresh_ledger(engine: Engine, unless_within_s: float = 0.0) -> dict | None:
    """Bill the status webhooks stored since the last refresh. Returns what was recorded, or None when another
    process is refreshing right now (its result is in the totals a moment later) or, with `unless_within_s`, when
    any process refreshed that recently: every sender's guard calls this, and one refresh per interval serves
    them all."""
    with engine.begin() as conn:
        if not conn.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": _LEDGER_LOCK}).scalar():
            return None
        if unless_within_s > 0 and conn.execute(text(
                "SELECT refreshed_at > now() - make_interval(secs => :s) FROM spend_watermark WHERE singleton"),
                {"s": unless_within_s}).scalar():
            return None
        row = conn.execute(query("budget/refresh_ledger"), {"settle_s": config.BUDGET_LEDGER_SETTLE_S}).one()
    return dict(row._mapping)


@dataclass(frozen=True)
class Totals:
    day_inr: Decimal
    month_inr: Decimal
    day_billable: int
    month_unrated: int


def totals(conn: Connection, day: dt.date) -> Totals:
    r = conn.execute(query("budget/totals"), {"business_date": day}).one()
    return Totals(_money(r.day_inr), _money(r.month_inr), int(r.day_billable), int(r.month_unrated))


def overridden_periods(conn: Connection, day: dt.date) -> set[str]:
    return {r.period for r in conn.execute(query("budget/overrides"), {"business_date": day})}


def current_verdict(engine: Engine, day: dt.date) -> tuple[Verdict, Totals]:
    daily, monthly, info = budgets()
    with engine.connect() as conn:
        t = totals(conn, day)
        over = overridden_periods(conn, day)
    return verdict(t.day_inr, t.month_inr, daily, monthly, info, over), t


# -- the guard -----------------------------------------------------------------------------------------------
def check_budget(engine: Engine, context: Mapping[str, Any] | None = None, day: dt.date | None = None,
                 actor: str = GUARD_ACTOR) -> Verdict:
    """Refresh the ledger, then act on today's (IST: the day the money is spent) and this month's spend."""
    from include.core.dates import ist_today

    day = day or ist_today()
    # A little less than the guard's own interval, so each sender's check still finds a fresh ledger.
    refresh_ledger(engine, unless_within_s=config.BUDGET_CHECK_S * 0.75)
    v, t = current_verdict(engine, day)
    ref = RunRef.from_context(context)
    for p in v.infos:
        start = period_start(p.period, day)
        _post_once(engine, start, f"budget-info:{p.period}", Alert(
            Severity.INFO, f"Spend at {p.ratio:.0%} of the {p.period} WhatsApp budget", {
                "spent": f"₹{p.spent:,.2f}", "budget": f"₹{p.budget:,.2f}", "period from": start.isoformat(),
                "at 100%": ("sending goes on: an operator overrode this budget" if p.overridden else
                            "the kill switch stops all sending and the approvers are paged")}, ref))
    if t.month_unrated:
        _post_once(engine, day, "budget-unrated", Alert(
            Severity.P1, f"{t.month_unrated} billable messages this month have no rate on the rate card", {
                "categories": ", ".join(f"{c} ({n})" for c, n in unrated_categories(engine, day)),
                "effect": "their spend counts as ₹0 until rate_card has a row for the category",
                "business date": day.isoformat()}, ref))
    if v.stops:
        stop_sending(engine, day, v, context, actor)
    return v


def unrated_categories(engine: Engine, day: dt.date) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [(r.category, r.messages) for r in conn.execute(query("budget/unrated_categories"),
                                                               {"business_date": day})]


def stop_sending(engine: Engine, day: dt.date, v: Verdict, context: Mapping[str, Any] | None = None,
                 actor: str = GUARD_ACTOR) -> bool:
    """Engage the kill switch with cause `budget` (unless it is already on) and page the approvers (P0, once per
    exceeded period). Returns whether this call engaged the switch."""
    from include.core import audit
    from include.delivery.kill_switch import SendingState, announce_sending_change

    over = v.stops
    reason = "budget exceeded: " + "; ".join(p.describe() for p in over)
    with engine.begin() as conn:
        row = conn.execute(query("budget/engage_kill_switch"), {"reason": reason, "actor": actor}).fetchone()
        if row is not None:
            audit.record(conn, actor, "pause_sending", "sending", reason, {
                "cause": "budget", "was_paused": False, "business_date": day,
                **{f"{p.period}_spent_inr": str(p.spent) for p in over},
                **{f"{p.period}_budget_inr": str(p.budget) for p in over}})
    engaged = row is not None
    ref = RunRef.from_context(context)
    if engaged:
        log.warning("BUDGET: kill switch engaged (%s)", reason)
        announce_sending_change(SendingState(*row, was_paused=False, cause="budget"), context)
    for p in over:
        start = period_start(p.period, day)
        _post_once(engine, start, f"budget-stop:{p.period}", Alert(
            Severity.P0, f"WhatsApp {p.period} budget exceeded: all sending stopped", {
                "spent": f"₹{p.spent:,.2f}", "budget": f"₹{p.budget:,.2f}", "period from": start.isoformat(),
                "kill switch": "engaged by the budget guard" if engaged else "was already on",
                "effect": "senders stop within a second; queued rows stay queued",
                "to continue": "trigger ops_resume_sending with a reason AND a budget override reason (audited)",
                "business date": day.isoformat()}, ref), conn_id=config.SLACK_APPROVERS_CONN_ID)
    return engaged


def _post_once(engine: Engine, day: dt.date, key: str, alert: Alert, conn_id: str | None = None) -> bool:
    """alerting.post_once, to a chosen Slack connection: the alerts_raised row commits only once Slack took it."""
    from include.core.alerting import post, post_once

    if conn_id is None:
        return post_once(engine, day, key, alert)
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            if conn.execute(query("fanout/raise_alert_once"), {"business_date": day, "alert_key": key}).fetchone() \
                    is None or not post(alert, conn_id=conn_id):
                tx.rollback()
                return False
            tx.commit()
        except BaseException:
            if tx.is_active:
                tx.rollback()
            raise
    return True


# -- resuming past a budget ----------------------------------------------------------------------------------
class BudgetOverrideRequired(ValueError):
    """Resuming a switch the budget guard engaged, without an override reason (an operator input error)."""


def grant_override(conn: Connection, actor: str, override_reason: object, day: dt.date | None = None) -> list[dict]:
    """Inside the resume's transaction: record an override for every budget exceeded today, so the guard lets
    sending go on for the rest of that period. Returns what was overridden (for the audit row)."""
    from include.core.dates import ist_today
    from include.delivery.kill_switch import require_reason

    why = require_reason(override_reason)
    day = day or ist_today()
    daily, monthly, info = budgets()
    t = totals(conn, day)
    v = verdict(t.day_inr, t.month_inr, daily, monthly, info)
    granted = []
    for p in v.exceeded:  # nothing exceeded any more (a budget was raised): nothing to override
        start = period_start(p.period, day)
        conn.execute(query("budget/record_override"), {
            "period": p.period, "period_start": start, "granted_by": actor, "reason": why,
            "spent_inr": p.spent, "budget_inr": p.budget})
        granted.append({"period": p.period, "from": start.isoformat(), "spent_inr": str(p.spent),
                        "budget_inr": str(p.budget)})
    return granted


# -- the 05:50 projection ------------------------------------------------------------------------------------
def plan_lines(conn: Connection, day: dt.date) -> list[PlanLine]:
    return [PlanLine(r.category, int(r.messages), None if r.inr_per_message is None else _money(r.inr_per_message))
            for r in conn.execute(query("budget/plan_cost"), {"business_date": day})]


def dearest_rate(conn: Connection, day: dt.date) -> Decimal:
    return _money(conn.execute(text("SELECT coalesce(max(inr_per_message), 0) FROM rate_card "
                                    "WHERE effective_from <= :d"), {"d": day}).scalar_one())


def projection_check(engine: Engine, day: dt.date):
    """The 05:50 runbook step: would sending today's plan exceed the daily or monthly budget? P1 if so."""
    from include.core.checks import CheckResult

    refresh_ledger(engine)
    daily, monthly, info = budgets()
    with engine.connect() as conn:
        t = totals(conn, day)
        lines = plan_lines(conn, day)
        fallback = dearest_rate(conn, day)
        over = overridden_periods(conn, day)
    proj = project(lines, t.day_inr, t.month_inr, fallback)
    v = verdict(proj.day_inr, proj.month_inr, daily, monthly, info, over)
    result = CheckResult("spend_budget", summary="projected spend within budget")
    result.facts.update({
        "planned messages (not sent yet)": proj.planned_messages, "plan cost": f"₹{proj.planned_inr:,.2f}",
        "today so far": f"₹{t.day_inr:,.2f}", "month so far": f"₹{t.month_inr:,.2f}",
        "projected today": f"₹{proj.day_inr:,.2f} of ₹{daily:,.2f}",
        "projected month": f"₹{proj.month_inr:,.2f} of ₹{monthly:,.2f}",
        "by category": ", ".join(f"{ln.category} {ln.messages} × "
                                 f"{'no rate' if ln.rate is None else f'₹{ln.rate}'}" for ln in lines) or "none"})
    for p in v.periods:
        if p.level is Level.STOP:
            result.escalate(Severity.P1, f"sending today's plan would exceed the {p.period} budget: projected "
                                         f"₹{p.spent:,.2f} of ₹{p.budget:,.2f} ({p.ratio:.0%})"
                                         + ("; an override is in force" if p.overridden else
                                            "; the kill switch will stop sending when it is reached"))
        elif p.level is Level.INFO:
            result.facts[f"{p.period} projection"] = f"{p.ratio:.0%} of the budget"
    for category, n in proj.unpriced.items():
        result.escalate(Severity.P1, f"{n} planned messages of category {category} have no rate on the rate card "
                                     f"(projected at the dearest rate, ₹{fallback})")
    if t.month_unrated:
        result.escalate(Severity.P1, f"{t.month_unrated} billable messages this month had no rate on the card")
    if not result.ok:
        result.summary = f"{len(result.items)} budget finding(s)"
    return result
