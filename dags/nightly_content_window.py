"""
### Nightly content window — 20:30 IST

Runbook *"20:30–21:30 nightly window"*. Prepares **tomorrow's** business date (IST, from `run_after`;
or the `business_date` Param for a manual run).

| Task | Runbook step |
|---|---|
| `check_approval_backlog` | Counts tomorrow's pending packs; above the threshold (50) a P2 to the approvers with counts per segment and the oldest items |
| `validate_templates` | Syncs template statuses from WhatsApp; PAUSED/DISABLED switches to the approved backup (P1), none = P0 |
| `plan_render_batches` | Splits the eligible advisors into a bounded number of batches (≤ 32, at least 2 so both cores work) |
| `render_approved_packs` (mapped) | Renders each advisor's approved pack with Pillow into object storage, content-addressed (unchanged renders are skipped), and QCs it: format, ≤ 5 MB, dimensions, disclaimer present/drawn/legible, banned claims, registration number |
| `review_compliance_with_ai` | Each approved pack's text reviewed by the AI compliance service next to the rules engine: a violation fails its renders' QC (findings merged with their source); slow or failing AI degrades to the light model, then cached verdicts, else rules-only; the daily token/cost ceiling means rules-only; each degradation a P1 |
| `assign_fallback_content` | Advisors without an approved, QC-passed pack get a rotating evergreen fallback (never the same within 7 days) — the same function the pre-delivery check uses |
| `render_fallback_packs` (mapped) | Renders and QCs the fallback packs the same way |
| `finalize_fallback_renders` | Links fallbacks to their renders; a fallback that fails QC is replaced by another |
| `send_canary` | Sends real renders to the internal canary list through the fan-out's sender, waits (bounded) for delivered evidence; a failure is a P1 and the 05:50 check sees it |
| `publish_window_summary` | Slack summary (pending, renders, QC failures by rule, fallbacks, canary); emits `rendered_packs` |

A render that fails QC is never delivered. Rerunning for the same date renders nothing twice and adds no rows.
"""
from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, Param, dag, get_current_context

from include.core import config
from include.core.assets import APPROVED_PACKS, RENDERED_PACKS
from include.core.dagkit import date_param, default_args, ist_cron, task
from include.core.dates import TOMORROW


# 20:30 IST, and again whenever packs are approved in bulk after the window (the `approved_packs` asset): the new
# approvals get their renders and QC before 05:50; unchanged renders are not redone.
@dag(dag_id="nightly_content_window",
     schedule=AssetOrTimeSchedule(timetable=ist_cron(config.SCHEDULE_NIGHTLY_CONTENT_WINDOW), assets=[APPROVED_PACKS]),
     catchup=False,
     max_active_runs=1, tags=["content", "nightly"], default_args=default_args("content"), doc_md=__doc__,
     description="20:30 IST: approval backlog, templates, renders + QC, fallbacks, canary (tomorrow's date)",
     params={
         "business_date": date_param(TOMORROW, "The date whose packs to prepare."),
         "backlog_threshold": Param(config.PENDING_BACKLOG_THRESHOLD, type="integer", minimum=0,
                                    description="Pending packs above this many page the approvers (P2)."),
     })
def nightly_content_window():
    from include.content import tasks as t

    @task
    def check_approval_backlog() -> dict:
        return t.check_approval_backlog(get_current_context())

    @task
    def validate_templates() -> dict:
        return t.validate_templates(get_current_context())

    @task
    def plan_render_batches() -> list[dict]:
        return t.plan_render_batches(get_current_context())

    @task(map_index_template="{{ batch_label }}")
    def render_approved_packs(batch: dict) -> dict:
        get_current_context()["batch_label"] = t.render_batch_label(batch, "approved")
        return t.render_batch(batch, "approved")

    @task
    def review_compliance_with_ai() -> dict:
        return t.review_compliance_with_ai(get_current_context())

    @task
    def assign_fallback_content() -> dict:
        return t.assign_fallback_content(get_current_context())

    @task(map_index_template="{{ batch_label }}")
    def render_fallback_packs(batch: dict) -> dict:
        get_current_context()["batch_label"] = t.render_batch_label(batch, "fallback")
        return t.render_batch(batch, "fallback")

    @task
    def finalize_fallback_renders() -> dict:
        return t.finalize_fallback_renders(get_current_context())

    @task
    def send_canary() -> dict:
        return t.send_canary(get_current_context())

    @task(trigger_rule="all_done", outlets=[RENDERED_PACKS])
    def publish_window_summary(reported: dict) -> dict:
        ctx = get_current_context()
        summary = t.publish_window_summary(reported, ctx)
        ctx["outlet_events"][RENDERED_PACKS].extra = t.rendered_packs_extra(summary, ctx)
        return summary

    batches = plan_render_batches()
    approved = render_approved_packs.expand(batch=batches)
    reviewed = review_compliance_with_ai()
    assigned = assign_fallback_content()
    fallbacks = render_fallback_packs.expand(batch=batches)
    final = finalize_fallback_renders()
    canary = send_canary()
    backlog = check_approval_backlog()
    templates = validate_templates()
    backlog >> batches
    approved >> reviewed >> assigned >> fallbacks >> final
    [final, templates] >> canary
    publish_window_summary({"check_approval_backlog": backlog, "validate_templates": templates,
                            "review_compliance_with_ai": reviewed, "finalize_fallback_renders": final,
                            "send_canary": canary})


nightly_content_window()
