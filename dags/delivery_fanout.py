"""
### Delivery fan-out — 06:00 IST

Runbook *"06:00–06:05 delivery"*. Sends today's plan (written by `pre_delivery_check`) over WhatsApp.

| Task | What it does |
|---|---|
| `prepare_send_queue` | Queues every plan row as a `deliveries` row (idempotent) and lists the sender units: one per (shard, segment), at most 64 |
| `send_shard` (mapped) | Streams its rows in claimed batches, sends concurrently inside the number's token bucket (shared across live senders, adaptive on 130429), retries retryable errors with backoff (131056: 4^x s for that recipient), never retries permanent ones, re-checks DNC/opt-out at send time, rotates a RED or policy-blocked number to the hot spare, switches a paused template to its backup, honours the kill switch within a tick, pages on >2% failures in 2 min, <95% success for 2 min, or a 190 |
| `validate_delivery_sla` | ≥ 99% of the plan accepted within 5 minutes, else a P0 with counts by reason; final summary to Slack |

**Idempotency**: the key is (business date, advisor), sent as `biz_opaque_callback_data`. A task retry, a clear, a rerun or
a second run for the same date never sends twice; a request whose outcome is unknown is reconciled against status evidence first.
**Backfill**: trigger with `business_date` = a past date; a missing plan is built first; rows already sent are skipped.
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, get_current_context, task

from include import config
from include.dagkit import business_date, default_args, ist_cron


@dag(dag_id="delivery_fanout", schedule=ist_cron(config.SCHEDULE_DELIVERY_FANOUT), catchup=False,
     max_active_runs=1, tags=["delivery"], default_args=default_args(), doc_md=__doc__,
     params={
         "business_date": Param(None, type=["null", "string"], format="date",
                                description="Leave empty for today in IST; a past date backfills that day."),
         "honour_jitter": Param(True, type="boolean", description="Spread sends over the plan's jitter offsets."),
     })
def delivery_fanout():
    @task
    def prepare_send_queue() -> list[dict]:
        from include.db import get_engine
        from include.delivery import prepare_fanout

        return prepare_fanout(get_engine(), business_date(get_current_context()))

    @task(map_index_template="{{ unit_label }}", retries=3, retry_delay=dt.timedelta(seconds=5),
          retry_exponential_backoff=0)
    def send_shard(unit: dict) -> dict:
        from include.delivery import run_send_shard

        ctx = get_current_context()
        ctx["unit_label"] = f"{unit['number']} · shard {unit['shard']} · {unit['segment']}"
        return run_send_shard(unit, ctx)

    @task(trigger_rule="all_done")
    def validate_delivery_sla() -> dict:
        from include.db import get_engine
        from include.delivery import validate_sla

        ctx = get_current_context()
        return validate_sla(get_engine(), business_date(ctx), ctx)

    units = prepare_send_queue()
    send_shard.expand(unit=units) >> validate_delivery_sla()


delivery_fanout()
