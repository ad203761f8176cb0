"""
### Run a whole business day end to end — `ops_run_business_day`

For demos, drills and recovery: one trigger runs the day's four runbook DAGs **for the date you give**, in the
order the schedule runs them, each waiting for the one before:

| Task | Triggers | With |
|---|---|---|
| `plan_the_day` | — | checks the date and reason; works out each step's Params |
| `run_nightly_content_window` | `nightly_content_window` | `business_date` = the date (the window normally prepares tomorrow; here it prepares *this* date) |
| `run_pre_delivery_check` | `pre_delivery_check` | the date, and `jitter_window_s` if given |
| `choose_the_fanout` | — | today: `run_delivery_fanout`; a past date: `run_backfill_delivery` |
| `run_delivery_fanout` | `delivery_fanout` (**today**) | the date, `honour_jitter` |
| `run_backfill_delivery` | `ops_backfill_delivery` (a **past** date, with your reason, audited; archived dates are refused) | the date, the reason, `honour_jitter` |
| `run_post_delivery_report` | `post_delivery_report` | the date, checkpoint `06:30` (reconcile, KPIs, SLA, data quality, report) |
| `summarise_business_day` | — | one Slack summary and this run's note: each step's worst finding |

**Business date:** empty means today in IST; a future date is refused (nothing can be delivered for it yet).
Each step runs after the previous one *finishes*, whatever its state, as on the real schedule (a P0 at 05:50
does not stop 06:00); a step whose run failed is retried once by running it again (every step is idempotent for
a date); each triggered run is linked from its task ("Triggered DAG"), with its own logs, note and
Slack summary. The waits are deferred to the triggerer, so they hold no worker slot. Real messages are sent:
the kill switch, DNC and idempotency apply as always, and a rerun for the same date sends nothing twice.
"""
from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context

from include.core.dagkit import date_param, default_args, task
from include.core.dates import OPERATOR


@dag(dag_id="ops_run_business_day", schedule=None, catchup=False, tags=["ops", "drill"],
     default_args=default_args(retries=1), doc_md=__doc__, max_active_runs=1,
     description="Operator: run nightly → 05:50 → fan-out → 06:30 report for one date (default today)",
     params={"business_date": date_param(OPERATOR),
             "reason": Param("", type="string", title="Reason",
                             description="Required for a past date (its fan-out is an audited backfill)."),
             "jitter_window_s": Param(None, type=["null", "integer"], minimum=1, title="Jitter window (s)",
                                      description="Spread of the plan's send offsets; empty: the 05:50 default."),
             "honour_jitter": Param(True, type="boolean", title="Honour jitter",
                                    description="Off: send as fast as the rate limits allow (drills).")})
def ops_run_business_day():
    from include.operations import tasks as t

    @task(multiple_outputs=True)  # each step's Params are their own XCom, so the operators below can take them
    def plan_the_day() -> dict:
        return t.plan_business_day(get_current_context())

    plan = plan_the_day()

    def trigger(task_id: str, dag_id: str, conf: str, step: str, **kwargs) -> TriggerDagRunOperator:
        return TriggerDagRunOperator(
            task_id=task_id, trigger_dag_id=dag_id, conf=plan[conf], trigger_run_id=plan[f"run_id_{step}"],
            wait_for_completion=True, deferrable=True, poke_interval=5, failed_states=["failed"],
            execution_timeout=dt.timedelta(hours=4),  # the whole step, waiting included
            # A retry runs the step again (clears its run): every step is idempotent for a date.
            reset_dag_run=True, **kwargs)

    @task.branch(trigger_rule="all_done")
    def choose_the_fanout(day_plan: dict) -> str:
        return "run_delivery_fanout" if day_plan["fanout_dag"] == "delivery_fanout" else "run_backfill_delivery"

    nightly = trigger("run_nightly_content_window", "nightly_content_window", "nightly_conf", "nightly_content_window")
    check = trigger("run_pre_delivery_check", "pre_delivery_check", "check_conf", "pre_delivery_check",
                    trigger_rule="all_done")
    fanout_today = trigger("run_delivery_fanout", "delivery_fanout", "fanout_conf", "fanout")
    fanout_past = trigger("run_backfill_delivery", "ops_backfill_delivery", "fanout_conf", "fanout")
    report = trigger("run_post_delivery_report", "post_delivery_report", "report_conf", "post_delivery_report",
                     trigger_rule="all_done")

    @task(trigger_rule="all_done")
    def summarise_business_day(day_plan: dict) -> dict:
        return t.summarise_business_day(day_plan, get_current_context())

    # As on the schedule, each step starts when the one before has finished, whatever its state.
    choice = choose_the_fanout(plan)
    plan >> nightly >> check >> choice >> [fanout_today, fanout_past] >> report >> summarise_business_day(plan)


ops_run_business_day()
