"""The fan-out's units: what a unit is (one per shard, or per (shard, segment) on a fast number), how a date
is queued and cut into units, what a unit's sender is told (`SenderOptions`) and what it reports back
(`UnitResult`, or one of the two ways it fails)."""
from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from include.content import templates
from include.core import config
from include.core.db import query

log = logging.getLogger(__package__)


@dataclass(frozen=True)
class Unit:
    """What one mapped sender sends: a shard's rows of one or more segment groups, in send order.

    A standard-throughput number (80 msg/s) is one process's work, so its unit covers all four segment
    groups in turn and keeps the number busy from the first second to the last. A high-throughput number
    is split per segment group so that several processes (cores) feed it."""

    business_date: dt.date
    shard: int
    segments: tuple[str, ...]
    peers: int = 1  # units planned on this shard's number, this one included

    @property
    def segment(self) -> str:
        return "+".join(self.segments)

    @property
    def label(self) -> str:
        return f"shard {self.shard} / {self.segment}"

    def as_dict(self) -> dict:
        return {"business_date": self.business_date.isoformat(), "shard": self.shard,
                "segments": list(self.segments), "segment": self.segment, "peers": self.peers}

    @classmethod
    def from_dict(cls, d: dict) -> Unit:
        segments = d.get("segments") or str(d["segment"]).split("+")
        return cls(dt.date.fromisoformat(d["business_date"]), int(d["shard"]), tuple(str(x) for x in segments),
                   int(d.get("peers") or 1))


@dataclass
class SenderOptions:
    """How a unit sends. Defaults are the FA_* settings as they are when the options are made (not at import)."""

    jitter_honoured: bool = True
    claim_batch: int = field(default_factory=lambda: config.SENDER_CLAIM_BATCH)
    min_in_flight: int = field(default_factory=lambda: config.SENDER_MIN_IN_FLIGHT)
    in_flight_latencies: float = field(default_factory=lambda: config.SENDER_IN_FLIGHT_LATENCIES)
    max_in_flight_s: float = field(default_factory=lambda: config.SENDER_MAX_IN_FLIGHT_S)
    max_attempts: int = field(default_factory=lambda: config.SENDER_MAX_ATTEMPTS)
    control_tick_s: float = field(default_factory=lambda: config.SENDER_CONTROL_TICK_S)
    peer_start_wait_s: float = field(default_factory=lambda: config.SENDER_PEER_START_WAIT_S)
    number_check_s: float = field(default_factory=lambda: config.SENDER_NUMBER_CHECK_S)
    hard_deadline_s: float = field(default_factory=lambda: config.SENDER_HARD_DEADLINE_S)
    stale_sending_s: float = field(default_factory=lambda: config.SENDER_STALE_SENDING_S)
    unknown_resolve_after_s: float = field(default_factory=lambda: config.UNKNOWN_RESOLVE_AFTER_S)
    watermark_margin_s: float = field(default_factory=lambda: config.WEBHOOK_WATERMARK_MARGIN_S)
    settle_wait_s: float = field(default_factory=lambda: config.UNKNOWN_SETTLE_WAIT_S)
    settle_poll_s: float = field(default_factory=lambda: config.UNKNOWN_SETTLE_POLL_S)
    kill_switch_poll_s: float = field(default_factory=lambda: config.SENDER_KILL_SWITCH_POLL_S)
    max_pause_s: float = field(default_factory=lambda: config.SENDER_MAX_PAUSE_S)
    progress_log_s: float = field(default_factory=lambda: config.SENDER_PROGRESS_LOG_S)
    actor: str = "delivery_fanout"

    def in_flight_for(self, rate: float, latency_s: float | None = None) -> int:
        """Requests a sender at `rate` msg/s keeps open at once when the API answers in `latency_s` on average
        (None: the most it may hold). config.SENDER_MIN_IN_FLIGHT says why."""
        span = self.max_in_flight_s if latency_s is None else min(self.max_in_flight_s,
                                                                  self.in_flight_latencies * latency_s)
        return max(self.min_in_flight, math.ceil(rate * span))


@dataclass
class UnitResult:
    unit: dict
    accepted: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    unknown: int = 0
    reconciled_accepted: int = 0
    reconciled_requeued: int = 0
    throttled: int = 0
    held: int = 0  # accepted but held for quality assessment (template pacing): sent later or dropped by Meta
    numbers_used: list[str] = field(default_factory=list)
    stopped_reason: str | None = None
    paused_seconds: float = 0.0
    elapsed_s: float = 0.0
    startup_s: float = 0.0     # from the unit's start to its first send: checks before sending, then the start gate
    start_gate_s: float = 0.0  # the part of startup_s spent waiting for peers on the number
    remaining_queued: int = 0
    unknown_left: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class AuthFailure(RuntimeError):
    """The access token is invalid or expired (190): stop the run, keep the rows queued."""


class UnitIncomplete(RuntimeError):
    """A unit stopped with rows still queued (deadline, a long pause, no spare or template): it has paged
    and fails, so the run shows it; the rows stay queued for a retry or a backfill."""


# -- planning the fan-out ------------------------------------------------------------------------
def enqueue(engine: Engine, business_date: dt.date) -> int:
    with engine.begin() as conn:
        queued = conn.execute(query("fanout/enqueue_from_plan"), {"business_date": business_date}).rowcount
    if queued:  # a retry or a second run that queued nothing new leaves the statistics as they are
        with engine.begin() as conn:
            conn.execute(query("fanout/analyze"))
    return queued


def segment_groups(segments: list[str], open_rows: list[int], processes: int) -> list[tuple[str, ...]]:
    """The segment groups (in send order) split into `processes` contiguous runs of about equal open rows."""
    processes = max(1, min(processes, len(segments)))
    total = sum(open_rows)
    groups: list[tuple[str, ...]] = []
    current: list[str] = []
    done = 0
    for i, (seg, n) in enumerate(zip(segments, open_rows, strict=True)):
        current.append(seg)
        done += n
        left_groups = processes - len(groups) - 1
        left_segments = len(segments) - i - 1
        # close this run once it holds its share, or when every later segment is needed for a run of its own
        if left_groups and (done >= total * (len(groups) + 1) / processes or left_segments == left_groups):
            groups.append(tuple(current))
            current = []
    groups.append(tuple(current))
    return groups


def units_for(engine: Engine, business_date: dt.date, max_units: int = config.MAX_SENDER_TASKS,
              process_mps: int | None = None) -> list[dict]:
    """Mapped units: one per shard (its segment groups in send order), or, for a number faster than one process
    feeds (FA_SENDER_PROCESS_MPS), ceil(msg/s / that) units, each a contiguous share of the segment groups.
    Bounded: 4 shards x 4 segments = 16 at most here."""
    process_mps = process_mps or config.SENDER_PROCESS_MPS
    with engine.connect() as conn:
        rows = conn.execute(query("fanout/units"), {"business_date": business_date}).fetchall()
    units = []
    for r in rows:
        number = r.display_phone or "no number"
        processes = -(-int(r.throughput_mps or 0) // process_mps)
        groups = segment_groups(list(r.segments), list(r.open_rows), processes)
        for segs in groups:
            unit = Unit(business_date, r.shard, segs, peers=len(groups)).as_dict()
            unit.update(number=number, open_rows=sum(n for seg, n in zip(r.segments, r.open_rows, strict=True)
                                                     if seg in segs),
                        label=f"{number} · shard {r.shard} · {' → '.join(segs)}")  # the mapped task's name in the UI
            units.append(unit)
    # Segment-group order first, so however few executor slots run at once, the first groups go first.
    order = {seg: i for i, seg in enumerate(config.SEGMENTS)}
    units.sort(key=lambda u: (order.get(u["segments"][0], 99), u["shard"]))
    if len(units) > max_units:
        raise ValueError(f"{len(units)} sender units exceed the bound of {max_units}; add fewer shards")
    return units


def prepare_fanout(engine: Engine, business_date: dt.date) -> list[dict]:
    """Make sure the date has a plan (building it for a backfill), queue it, and return the units."""
    from include.content import readiness as content
    from include.delivery import planning

    with engine.connect() as conn:
        planned = conn.execute(query("plan/exists"), {"business_date": business_date}).fetchone()
    if planned is None:
        log.warning("no plan for %s: building it now (backfill or missed pre-delivery check)", business_date)
        content.assign_content(engine, business_date)
        chosen = templates.decide_variants(engine).chosen
        planning.build_plan(engine, business_date, chosen)
    queued = enqueue(engine, business_date)
    units = units_for(engine, business_date)
    log.info("fan-out %s: %d deliveries queued now, %d units", business_date, queued, len(units))
    return units
