"""The one alerting path of every DAG: Slack Block Kit messages on the `slack_alerts` connection.

Every message carries a severity (P0 pages, P1/P2 warn, info reports), the DAG, task and run,
a link to the run in the Airflow UI and the facts that triggered it. Task failure callbacks use
`on_task_failure`. Locally the connection points at the sandbox's Slack-compatible endpoint.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from include.core import config

log = logging.getLogger(__name__)


class Severity(StrEnum):
    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    INFO = "info"

    @property
    def pages(self) -> bool:
        return self is Severity.P0

    @property
    def rank(self) -> int:  # lower is worse
        return {"P0": 0, "P1": 1, "P2": 2, "info": 3}[self.value]


_EMOJI = {Severity.P0: ":rotating_light:", Severity.P1: ":warning:", Severity.P2: ":large_yellow_circle:",
          Severity.INFO: ":information_source:"}


def worst(severities: Sequence[Severity]) -> Severity:
    return min(severities, key=lambda s: s.rank, default=Severity.INFO)


@dataclass
class RunRef:
    """Where an alert comes from; empty fields are left out of the message."""

    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None

    @property
    def url(self) -> str | None:
        if not (self.dag_id and self.run_id):
            return None
        base = f"{config.UI_BASE_URL.rstrip('/')}/dags/{quote(self.dag_id)}/runs/{quote(self.run_id, safe='')}"
        if self.task_id:
            base += f"/tasks/{quote(self.task_id)}"
            if self.map_index is not None and self.map_index >= 0:
                base += f"/mapped/{self.map_index}"
        return base

    @property
    def required_actions_url(self) -> str | None:
        """The UI page where a person answers this task's human-in-the-loop request."""
        return f"{self.url}/required_actions" if self.url and self.task_id else None

    @classmethod
    def from_context(cls, context: Mapping[str, Any] | None) -> RunRef:
        if not context:
            return cls()
        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        return cls(dag_id=getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None),
                   task_id=getattr(ti, "task_id", None),
                   run_id=getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None),
                   map_index=getattr(ti, "map_index", None),
                   try_number=getattr(ti, "try_number", None))


@dataclass
class Alert:
    severity: Severity
    title: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    source: RunRef = field(default_factory=RunRef)
    details: Sequence[str] = ()

    def text(self) -> str:
        """Plain-text fallback (notifications, clients without Block Kit)."""
        where = f" [{self.source.dag_id}.{self.source.task_id}]" if self.source.dag_id else ""
        return f"[{self.severity.value}]{where} {self.title}"

    def blocks(self) -> list[dict]:
        """The Block Kit message, built with slack_sdk's models (which validate it) and fitted to Slack's
        limits: every text is shortened to its block's maximum rather than rejected."""
        header = f"{_EMOJI[self.severity]} {self.severity.value}: {self.title}"
        blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=_fit(header, HeaderBlock.text_max_length)))]
        ctx = [f"*{k}:* `{_esc(v)}`" for k, v in (("dag", self.source.dag_id), ("task", self.source.task_id),
                                              ("run", self.source.run_id)) if v]
        if self.source.map_index is not None and self.source.map_index >= 0:
            ctx.append(f"*map index:* `{self.source.map_index}`")
        if self.severity.pages:
            ctx.append("*paging on-call*")
        if ctx:
            blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_fit(" · ".join(ctx), _TEXT_MAX))]))
        facts = list(self.facts.items())
        if facts:
            shown, rest = facts[:SectionBlock.fields_max_length], facts[SectionBlock.fields_max_length:]
            blocks.append(SectionBlock(fields=[MarkdownTextObject(text=_fit(f"*{_esc(k)}*\n{_esc(v)}", _FIELD_MAX))
                                               for k, v in shown]))
            if rest:
                blocks.append(SectionBlock(text=MarkdownTextObject(
                    text=_join_within([f"*{_esc(k)}:* {_esc(v)}" for k, v in rest], SectionBlock.text_max_length))))
        if self.details:
            bullets = [f"• {_esc(d)}" for d in self.details[:_MAX_DETAILS]]
            blocks.append(SectionBlock(text=MarkdownTextObject(text=_join_within(
                bullets, SectionBlock.text_max_length, hidden=max(0, len(self.details) - _MAX_DETAILS)))))
        url = self.source.url
        if url and len(url) <= ButtonElement.url_max_length:  # a cut URL would lead nowhere: no button then
            blocks.append(ActionsBlock(elements=[ButtonElement(text=PlainTextObject(text="Open run in Airflow"),
                                                               url=url)]))
        return [b.to_dict() for b in blocks]  # to_dict() validates against slack_sdk's Block Kit rules


# Slack's limits that slack_sdk does not expose as model attributes (it validates the rest itself and
# raises SlackObjectFormationError on overlong text, so we fit text to the limits before building).
_TEXT_MAX = 3000    # any mrkdwn text object (context elements)
_FIELD_MAX = 2000   # each of a section's fields
_MAX_DETAILS = 20   # detail lines listed before "… and N more"
_EXCEPTION_MAX = 500


def _esc(value: object) -> str:
    """Data shown in mrkdwn with Slack's three escapes: a `<` from an error title or a file name would otherwise
    start a link or a mention (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fit(text: str, limit: int) -> str:
    """`text` shortened to at most `limit` characters, marked with an ellipsis when it was cut."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _join_within(lines: Sequence[str], limit: int, hidden: int = 0) -> str:
    """As many whole lines as fit in `limit` characters, then "… and N more" for the lines left out
    (plus `hidden` lines the caller already left out). A first line longer than the limit is cut."""
    reserve = len(f"\n… and {len(lines) + hidden} more")
    kept: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        budget = limit if (i == len(lines) - 1 and not hidden) else limit - reserve
        if used + len(line) + (1 if kept else 0) > budget:
            if not kept:
                kept.append(_fit(line, limit - reserve))
            break
        kept.append(line)
        used += len(line) + (1 if len(kept) > 1 else 0)
    more = len(lines) - len(kept) + hidden
    return "\n".join(kept) + (f"\n… and {more} more" if more else "")


def post(alert: Alert, conn_id: str = config.SLACK_CONN_ID) -> bool:
    """Post to Slack, and record a P0/P1 on its incident. Returns False (and logs) instead of raising: an alert must
    never fail the task that raises it, and the same facts are always in the task log."""
    level = logging.INFO if alert.severity is Severity.INFO else logging.WARNING
    log.log(level, "ALERT %s | %s | %s", alert.text(), dict(alert.facts), list(alert.details)[:5])
    if alert.severity in (Severity.P0, Severity.P1):
        # Every P0/P1 opens or joins an incident (include/incidents/): a timeline, escalation to people, a
        # post-mortem due date. Never raises: the Slack post below goes out whatever the database says.
        from include.incidents.records import record_alert_quietly

        record_alert_quietly(alert)
    try:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        SlackWebhookHook(slack_webhook_conn_id=conn_id, timeout=10).send(text=alert.text(), blocks=alert.blocks())
        return True
    except Exception:
        log.exception("could not post alert to Slack connection %r", conn_id)
        return False


def post_once(engine, business_date, key: str, alert: Alert) -> bool:
    """Post `alert` only the first time `key` is raised for the business date, however many processes
    or runs see the condition (recorded in `alerts_raised`). Returns whether it was posted.

    The `alerts_raised` row is inserted and the alert posted inside one transaction, committed only once
    Slack has accepted the post; if the post fails the row is rolled back, so the next caller posts it
    (a P0 that never reached Slack is not silenced). A concurrent caller's insert of the same key waits
    on the uncommitted row: it finds it committed (and does not post) or rolled back (and posts itself),
    so concurrent callers still post at most once. The wait is bounded by the post's own timeout."""
    from include.core.db import query

    with engine.connect() as conn:
        tx = conn.begin()
        try:
            first = conn.execute(query("fanout/raise_alert_once"), {"business_date": business_date,
                                                                     "alert_key": key}).fetchone()
            if not first:
                tx.rollback()
                return False
            if not post(alert):
                tx.rollback()  # not recorded: the next caller that sees the condition posts it
                log.warning("alert %r for %s not recorded: Slack did not accept it", key, business_date)
                return False
        except BaseException:
            if tx.is_active:
                tx.rollback()
            raise
        try:
            tx.commit()
        except Exception:  # it was posted; at worst a later caller posts it again
            log.exception("alert %r for %s was posted but could not be recorded", key, business_date)
    return True


def alert(severity: Severity | str, title: str, facts: Mapping[str, Any] | None = None,
          context: Mapping[str, Any] | None = None, details: Sequence[str] = ()) -> Alert:
    """Build and post an alert for the running task (context from get_current_context() if omitted)."""
    if context is None:
        context = _current_context()
    a = Alert(Severity(severity), title, dict(facts or {}), RunRef.from_context(context), tuple(details))
    post(a)
    return a


def _current_context() -> Mapping[str, Any] | None:
    try:
        from airflow.sdk import get_current_context

        return get_current_context()
    except Exception:  # noqa: BLE001 - outside a task there is simply no context
        return None


def on_task_failure(context: Mapping[str, Any]) -> None:
    """Task-level on_failure_callback: a P1 with the exception; the DAG decides paging separately.

    An operator's refused input (`OperatorInputError`: a typo in a Param, a wrong date, an empty reason) is
    not an incident: it is logged for the operator who triggered the run and nothing is posted to on-call."""
    from include.core.dagkit import OperatorInputError

    exc = context.get("exception")
    ref = RunRef.from_context(context)
    if isinstance(exc, OperatorInputError):
        log.warning("OPERATOR INPUT REFUSED %s.%s (run %s): %s. Nothing was changed; fix the parameter and "
                    "trigger the DAG again.", ref.dag_id, ref.task_id, ref.run_id, exc)
        return
    post(Alert(Severity.P1, f"Task failed: {ref.dag_id}.{ref.task_id}",
               {"exception": _fit(f"{type(exc).__name__}: {exc}", _EXCEPTION_MAX) if exc else "unknown",
                "try": ref.try_number}, ref))
