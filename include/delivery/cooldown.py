"""The quality-drop runbook's policy, pure (no database, no Airflow; dates are injected):

* **Message classes.** The daily pack is critical: it is sent on a ramped number within its share. Canaries,
  re-sends (ops_retry_failed_deliveries) and marketing variants are not: on a number whose quality dropped
  (YELLOW or RED now, or in a cooldown/ramp) they are held back at once.
* **The ramp.** A drop opens a cooldown of FA_COOLDOWN_HOURS (48-72 h) at 0% of the number's normal share of
  the plan. After it, each healthy business date (quality GREEN that morning) steps the share up by
  FA_COOLDOWN_STEP_PCT: 25 -> 50 -> 75 -> 100, and 100% ends the ramp. A YELLOW date **holds** (no step, no
  reset: the number still sends its current share, the cooldown clock keeps running). A RED date **resets**:
  share 0% and a fresh cooldown from that morning. Any other rating (UNKNOWN, NA) holds: only a known GREEN
  counts as healthy. Each business date is judged once (re-running the 05:50 check changes nothing).
* **The planner's cap.** A ramped number carries at most floor(share% x its normal share); the overflow goes to
  targets in order, each up to its own remaining capacity; what no target can take is reported, never hidden.
"""
from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, replace

HEALTHY = frozenset({"GREEN", "HIGH"})
DROPPED = frozenset({"YELLOW", "RED", "MEDIUM", "LOW"})
_NORMAL = {"HIGH": "GREEN", "MEDIUM": "YELLOW", "LOW": "RED"}


class MessageClass(enum.StrEnum):
    DAILY_PACK = "daily_pack"
    CANARY = "canary"
    RESEND = "resend"
    MARKETING = "marketing"


CRITICAL = frozenset({MessageClass.DAILY_PACK})
_SEND_KINDS = {
    "daily_pack": MessageClass.DAILY_PACK, "fanout": MessageClass.DAILY_PACK, "backfill": MessageClass.DAILY_PACK,
    "canary": MessageClass.CANARY, "resend": MessageClass.RESEND, "retry": MessageClass.RESEND,
    "marketing": MessageClass.MARKETING, "marketing_variant": MessageClass.MARKETING,
}


def classify(kind: str) -> MessageClass:
    """The class of a send by what sends it: the fan-out and a backfill send the daily pack (critical); the
    canary, an operator re-send and a marketing variant are not critical. An unknown kind is refused, never
    guessed (a new kind of send must be classified here)."""
    try:
        return _SEND_KINDS[str(kind).strip().lower()]
    except KeyError:
        raise ValueError(f"unknown kind of send {kind!r}: classify it in include/delivery/cooldown.py "
                         f"(known: {', '.join(sorted(_SEND_KINDS))})") from None


def is_critical(kind: str | MessageClass) -> bool:
    return (kind if isinstance(kind, MessageClass) else classify(kind)) in CRITICAL


def normal_quality(rating: str | None) -> str:
    r = str(rating or "UNKNOWN").upper()
    return _NORMAL.get(r, r)


def hold_reason(kind: str | MessageClass, quality: str | None, ramp_share_pct: int | None) -> str | None:
    """Why a send of this class may not go out on a number now (None: it may). Critical sends are never held
    here: the daily pack's volume is limited by the ramp in the plan instead."""
    cls = kind if isinstance(kind, MessageClass) else classify(kind)
    if cls in CRITICAL:
        return None
    q = normal_quality(quality)
    if q in ("YELLOW", "RED"):
        return f"quality {q}: non-critical {cls.value} sends paused on this number"
    if ramp_share_pct is not None and ramp_share_pct < 100:
        return f"in quality cooldown at {ramp_share_pct}% of its share: non-critical {cls.value} sends paused"
    return None


@dataclass(frozen=True)
class Ramp:
    started_at: dt.datetime
    cooldown_until: dt.datetime
    share_pct: int = 0
    step: int = 0
    last_evaluated_day: dt.date | None = None
    last_healthy_day: dt.date | None = None
    ended: bool = False

    @property
    def in_cooldown(self) -> bool:
        return self.share_pct == 0 and not self.ended


@dataclass(frozen=True)
class DayDecision:
    ramp: Ramp
    decision: str  # what happened, for the day's row and the summary
    changed: bool


def open_ramp(at: dt.datetime, cooldown_hours: int) -> Ramp:
    """A drop recorded at `at`: 0% until `at + cooldown_hours`."""
    _check_hours(cooldown_hours)
    return Ramp(started_at=at, cooldown_until=at + dt.timedelta(hours=cooldown_hours))


def _check_hours(hours: int) -> None:
    if not 48 <= hours <= 72:
        raise ValueError(f"cooldown must be 48-72 hours (runbook 000), got {hours}")


def evaluate_day(ramp: Ramp, day: dt.date, quality: str | None, at: dt.datetime, cooldown_hours: int,
                 step_pct: int = 25) -> DayDecision:
    """Judge business date `day` (evaluated at `at`, its 05:50 check) with that morning's quality."""
    _check_hours(cooldown_hours)
    if not 1 <= step_pct <= 100:
        raise ValueError(f"ramp step must be 1-100 %, got {step_pct}")
    if ramp.ended:
        return DayDecision(ramp, "ramp already ended", False)
    if ramp.last_evaluated_day is not None and day <= ramp.last_evaluated_day:
        return DayDecision(ramp, f"already judged on {ramp.last_evaluated_day}", False)
    q = normal_quality(quality)
    seen = replace(ramp, last_evaluated_day=day)
    if q == "RED":
        new = replace(seen, share_pct=0, step=0, cooldown_until=at + dt.timedelta(hours=cooldown_hours))
        return DayDecision(new, f"RED: reset to 0%, cooldown restarts until {new.cooldown_until:%Y-%m-%d %H:%M %Z}",
                           True)
    if q not in HEALTHY:
        return DayDecision(seen, f"{q}: hold at {ramp.share_pct}% (only a GREEN day steps)", True)
    healthy = replace(seen, last_healthy_day=day)
    if at < ramp.cooldown_until:
        return DayDecision(healthy, f"GREEN, in cooldown until {ramp.cooldown_until:%Y-%m-%d %H:%M %Z}: 0%", True)
    share = min(100, ramp.share_pct + step_pct)
    new = replace(healthy, share_pct=share, step=ramp.step + 1, ended=share >= 100)
    return DayDecision(new, f"GREEN: step {new.step} to {share}%" + (" - ramp complete" if new.ended else ""), True)


def override(ramp: Ramp, share_pct: int | None, end_cooldown: bool) -> Ramp:
    """An operator's override: a share in 0..100 (the ramp goes on from there, one step per healthy day, and the
    cooldown is over unless the share is 0), or "end cooldown": the number is back at 100% and the ramp ends."""
    if end_cooldown == (share_pct is not None):
        raise ValueError("give either a share percent or 'end cooldown', not both and not neither")
    share = 100 if end_cooldown else int(share_pct)
    if not 0 <= share <= 100:
        raise ValueError(f"share percent must be 0-100, got {share_pct}")
    until = ramp.cooldown_until if share == 0 else min(ramp.cooldown_until, ramp.started_at)
    return replace(ramp, share_pct=share, cooldown_until=until, ended=share >= 100)


def cap(normal_share: int, share_pct: int) -> int:
    """How many of its normal share a ramped number may carry."""
    if normal_share < 0 or not 0 <= share_pct <= 100:
        raise ValueError(f"bad cap input: normal share {normal_share}, share {share_pct}%")
    return normal_share * share_pct // 100


def allocate(excess: int, targets: list[tuple[str, int]]) -> tuple[list[tuple[str, int]], int]:
    """Spread `excess` rows over targets in order, each up to its remaining capacity (negative counts as 0).
    Returns ([(target, rows)], rows no target could take)."""
    if excess < 0:
        raise ValueError(f"excess must not be negative, got {excess}")
    out, left = [], excess
    for name, room in targets:
        take = min(left, max(0, room))
        if take:
            out.append((name, take))
            left -= take
    return out, left
