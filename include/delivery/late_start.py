"""A *scheduled* fan-out that starts late asks the on-call engineer before it sends (runbook: "06:00 delivery did
not start on time").

With catchup=False Airflow still runs the most recent missed 06:00 slot when the scheduler comes back (or a stack
starts) hours later. Sending the morning pack at 14:00 is a business decision, so the run asks through Airflow's
human-in-the-loop: `check_start_time` sees the lateness and pages, `ask_on_call_to_send_late` (an HITLOperator)
waits in the UI's Required Actions, `act_on_on_call_answer` sends or skips. No answer by
FA_FANOUT_LATE_DECISION_TIMEOUT_S takes the default, "Skip today": nothing is sent without a person.
Manual runs and ops_backfill_delivery are already a person's decision and never ask.

The pure parts (`lateness`, `Decision.from_payload`) are tested without Airflow; the rest are the tasks' bodies.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from include.core import config
from include.core.alerting import Alert, RunRef, Severity, post

SEND_NOW = "Send now"
SKIP_TODAY = "Skip today"
OPTIONS = [SEND_NOW, SKIP_TODAY]
DEFAULT = [SKIP_TODAY]  # what the scheduler applies when nobody answers in time

CHECK_TASK = "check_start_time"
ASK_TASK = "ask_on_call_to_send_late"
ACT_TASK = "act_on_on_call_answer"
SEND_TASK = "prepare_send_queue"
SKIP_TASK = "skip_late_run"


class LateStart(RuntimeError):
    """A late scheduled fan-out reached the send queue without a person's "Send now"."""


@dataclass(frozen=True)
class Lateness:
    slot: dt.datetime
    late_s: float
    limit_s: int

    @property
    def minutes(self) -> int:
        return int(self.late_s // 60)

    def describe(self) -> str:
        return (f"The scheduled delivery_fanout for the slot {self.slot:%Y-%m-%d %H:%M} UTC started {self.minutes} min "
                f"late (allowed: {self.limit_s // 60} min). Send today's packs now, or skip today "
                f"(a later send goes through ops_backfill_delivery with a reason).")


def lateness(context: Mapping[str, Any], now: dt.datetime | None = None,
             max_late_s: int | None = None) -> Lateness | None:
    """How late a *scheduled* run started, when later than allowed; None for an on-time run or a person's run."""
    from include.core.dagkit import run_type

    limit = config.FANOUT_MAX_LATE_START_S if max_late_s is None else max_late_s
    dag_run = context.get("dag_run")
    slot = getattr(dag_run, "run_after", None)
    if run_type(dag_run) != "scheduled" or slot is None:
        return None
    late_s = ((now or dt.datetime.now(dt.UTC)) - slot).total_seconds()
    return Lateness(slot, late_s, limit) if late_s > limit else None


@dataclass(frozen=True)
class Decision:
    """What the human-in-the-loop task returned: the option, and who chose it (None: the timeout's default)."""
    choice: str
    by: str | None

    @property
    def send(self) -> bool:
        # Only a person's "Send now" sends; a default can never be "Send now" (DEFAULT is Skip), but a payload
        # that claims it without a person is refused all the same.
        return self.choice == SEND_NOW and bool(self.by)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any] | None) -> Decision | None:
        if not payload:
            return None
        chosen = list(payload.get("chosen_options") or [])
        if len(chosen) != 1 or chosen[0] not in OPTIONS:
            raise ValueError(f"the on-call answer {chosen!r} is not one of {OPTIONS}")
        user = payload.get("responded_by_user") or {}
        return cls(chosen[0], (user.get("name") or user.get("id")) if isinstance(user, Mapping) else None)


# -- task bodies --------------------------------------------------------------------------------------------------
def check_start_time(context: Mapping[str, Any], now: dt.datetime | None = None) -> str:
    """Branch: on time (or a person's run) → prepare_send_queue; late → page and ask on-call."""
    late = lateness(context, now)
    if late is None:
        context["ti"].xcom_push(key="lateness", value={"late": False})
        return SEND_TASK
    ref = RunRef.from_context(context)
    ask = RunRef(ref.dag_id, ASK_TASK, ref.run_id)
    context["ti"].xcom_push(key="lateness", value={"late": True, "slot": late.slot.isoformat(),
                                                   "minutes": late.minutes, "text": late.describe()})
    post(Alert(Severity.P0, f"Scheduled fan-out started {late.minutes} min late: nothing is sent until on-call "
                            "decides",
               {"slot": late.slot.isoformat(), "allowed lateness": f"{late.limit_s // 60} min",
                "decide (Send now / Skip today)": ask.required_actions_url or ASK_TASK,
                "no answer within": f"{config.FANOUT_LATE_DECISION_TIMEOUT_S // 60} min: skipped, nothing sent"},
               ref))
    return ASK_TASK


def act_on_answer(context: Mapping[str, Any]) -> str:
    """Branch on the on-call answer: a person's "Send now" → prepare_send_queue, anything else → skip_late_run."""
    decision = Decision.from_payload(context["ti"].xcom_pull(task_ids=ASK_TASK))
    if decision is None:
        raise LateStart(f"{ASK_TASK} returned no answer")
    return SEND_TASK if decision.send else SKIP_TASK


def approved_by(context: Mapping[str, Any]) -> str | None:
    """Who answered "Send now" in this run, if anyone."""
    decision = Decision.from_payload(context["ti"].xcom_pull(task_ids=ASK_TASK))
    return decision.by if decision and decision.send else None


def require_decision(context: Mapping[str, Any], now: dt.datetime | None = None) -> str | None:
    """prepare_send_queue's guard: a late scheduled run sends only with a person's "Send now" (whatever the wiring
    upstream). `check_start_time`'s verdict counts (a run judged on time a second before the limit is not refused
    a second after it); without that task the lateness is measured here. Returns the approver (audited by the
    caller) or None for an on-time run."""
    verdict = context["ti"].xcom_pull(task_ids=CHECK_TASK, key="lateness")
    if verdict is None:
        late = lateness(context, now)
        if late is None:
            return None
        minutes = late.minutes
    elif not verdict.get("late"):
        return None
    else:
        minutes = verdict.get("minutes")
    who = approved_by(context)
    if not who:
        raise LateStart(f"scheduled run started {minutes} min after its slot (limit "
                        f"{config.FANOUT_MAX_LATE_START_S // 60} min) and nobody chose '{SEND_NOW}'; use "
                        "ops_backfill_delivery to send this date deliberately")
    return who


def audit_late_send(engine, context: Mapping[str, Any], business_date: dt.date, approver: str) -> None:
    from include.core.audit import record

    verdict = context["ti"].xcom_pull(task_ids=CHECK_TASK, key="lateness") or {}
    with engine.begin() as conn:
        record(conn, approver, "late_fanout_send_now", str(business_date), "on-call chose 'Send now' in the "
               "Airflow UI for a late scheduled fan-out",
               {"run_id": RunRef.from_context(context).run_id, "late_minutes": verdict.get("minutes")})


def skip_late_run(engine, context: Mapping[str, Any], business_date: dt.date) -> dict:
    """The run sends nothing: audited with who decided (or that nobody did), and Slack is told what to do next."""
    from include.core.audit import record

    decision = Decision.from_payload(context["ti"].xcom_pull(task_ids=ASK_TASK))
    by = decision.by if decision else None
    actor = by or "nobody (timeout)"
    why = (f"{by} chose '{SKIP_TODAY}'" if by else
           f"no answer within {config.FANOUT_LATE_DECISION_TIMEOUT_S // 60} min: the default '{SKIP_TODAY}'")
    with engine.begin() as conn:
        record(conn, actor, "late_fanout_skipped", str(business_date), why,
               {"run_id": RunRef.from_context(context).run_id})
    post(Alert(Severity.P1, f"Late fan-out for {business_date} skipped: nothing sent",
               {"decision": why, "to send this date later": "ops_backfill_delivery with the date and a reason"},
               RunRef.from_context(context)))
    return {"business_date": str(business_date), "sent": 0, "decided_by": by, "decision": SKIP_TODAY}
