"""The fan-out: one unit per (shard, segment), many units per run, none per advisor. One job per module:

* units.py: what a unit is, queueing a date and cutting it into units, a sender's options and result;
* work_queue.py: the rows a unit claims and where outcomes go (`WorkQueue`: `DeliveryQueue`, `CanaryQueue`);
* error_policy.py: what to do about a failed send (a pure decision over the WhatsApp error code table);
* control.py: the lanes beside the pacing loop (kill switch, lease tick, rotation, templates, monitoring);
* state.py: what those lanes share with the loop, and which thread owns what;
* outcomes.py: the outcome buffers the loop fills and a flush writes in one batch;
* pacing.py: `ShardSender`, the pacing loop itself, its progress line and its final word;
* tasks.py: the Airflow task bodies and the guards of a scheduled run.

Every module logs to this package's logger (`include.delivery.fanout`), the name operators' log filters and
the tests read.
"""
from include.delivery.fanout.error_policy import Action, Kind, backoff_s, decide, retryable_code
from include.delivery.fanout.pacing import ShardSender, image_link
from include.delivery.fanout.tasks import (
    fail_run_if_a_task_failed, refuse_dates_other_than_today, refuse_generic_backfill,
    run_async, run_prepare_send_queue, run_send_shard, send_unit, validate_sla,
)
from include.delivery.fanout.units import (
    AuthFailure, SenderOptions, Unit, UnitIncomplete, UnitResult, enqueue, prepare_fanout, units_for,
)
from include.delivery.fanout.work_queue import TRANSIENT_DB_ERRORS, CanaryQueue, DeliveryQueue, WorkQueue

__all__ = [
    "TRANSIENT_DB_ERRORS", "Action", "AuthFailure", "CanaryQueue", "DeliveryQueue", "Kind",
    "SenderOptions", "ShardSender", "Unit", "UnitIncomplete", "UnitResult", "WorkQueue", "backoff_s", "decide",
    "enqueue", "fail_run_if_a_task_failed", "image_link", "prepare_fanout", "refuse_dates_other_than_today",
    "refuse_generic_backfill", "retryable_code", "run_async",
    "run_prepare_send_queue", "run_send_shard", "send_unit", "units_for", "validate_sla",
]
