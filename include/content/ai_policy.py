"""Pure policies of the AI compliance review (include/content/ai_review.py): when to degrade, how AI findings
merge with the rules engine's, what a call costs, and how a model's answer is read. No I/O, injectable clock.

Degradation ladder (runbook 000 "AI service degradation"; runbook 004: compliance engine response < 1.5 s):

    ai (main model) --slow or failing--> ai_light (lighter model) --slow or failing--> cache (earlier verdicts
    for unchanged text, else rules-only)          daily token or cost ceiling reached (any tier) --> rules_only

"Slow" is the median latency of a model's last N calls above factor x baseline; "failing" is more than the
allowed share of those calls failing (errors and timeouts). Nothing is judged before `min_calls` calls. The ladder
only goes down within a run: the next run starts again at the main model.
"""
from __future__ import annotations

import json
import re
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Tier(StrEnum):
    MAIN = "ai"
    LIGHT = "ai_light"
    CACHE = "cache"
    RULES_ONLY = "rules_only"


_NEXT = {Tier.MAIN: Tier.LIGHT, Tier.LIGHT: Tier.CACHE}


@dataclass(frozen=True)
class Thresholds:
    """The degradation thresholds; their values live in include/core/config.py (`from_config`)."""
    latency_baseline_s: float
    latency_factor: float
    max_failure_rate: float
    window_calls: int
    min_calls: int
    daily_token_ceiling: int
    daily_cost_ceiling: float

    def __post_init__(self):
        if self.latency_baseline_s <= 0 or self.latency_factor <= 0:
            raise ValueError("AI review latency baseline and factor must be positive")
        if not 0 <= self.max_failure_rate < 1:
            raise ValueError(f"AI review max failure rate {self.max_failure_rate} must be in [0, 1)")
        if self.window_calls < 1 or not 1 <= self.min_calls <= self.window_calls:
            raise ValueError(f"AI review window: min_calls {self.min_calls} must be in 1..window_calls "
                             f"{self.window_calls}")

    @classmethod
    def from_config(cls) -> Thresholds:
        from include.core import config

        return cls(config.AI_REVIEW_LATENCY_BASELINE_S, config.AI_REVIEW_LATENCY_FACTOR,
                   config.AI_REVIEW_MAX_FAILURE_RATE, config.AI_REVIEW_WINDOW_CALLS, config.AI_REVIEW_MIN_CALLS,
                   config.AI_REVIEW_DAILY_TOKEN_CEILING, config.AI_REVIEW_DAILY_COST_CEILING)


@dataclass(frozen=True)
class Call:
    """One call to a model: how long it took and whether it produced a usable verdict."""
    model: str
    latency_s: float
    ok: bool


@dataclass(frozen=True)
class Degradation:
    from_tier: Tier
    to_tier: Tier
    model: str | None
    reason: str
    at: float

    @property
    def key(self) -> str:
        return f"ai_review:{self.from_tier.value}->{self.to_tier.value}"


def judge(calls: Sequence[Call], th: Thresholds) -> str | None:
    """Why a model's recent calls make it unfit (failure rate first, then latency), or None."""
    window = list(calls)[-th.window_calls:]
    if len(window) < th.min_calls:
        return None
    failed = sum(1 for c in window if not c.ok)
    rate = failed / len(window)
    if rate > th.max_failure_rate:
        return (f"failure rate {rate:.0%} ({failed} of the last {len(window)} calls) above "
                f"{th.max_failure_rate:.0%}")
    median = statistics.median(c.latency_s for c in window)
    limit = th.latency_baseline_s * th.latency_factor
    if median > limit:
        return (f"median latency {median:.2f} s over the last {len(window)} calls above {th.latency_factor:g}x "
                f"the {th.latency_baseline_s:g} s baseline ({limit:g} s)")
    return None


def budget_reason(tokens_used: int, cost_used: float, th: Thresholds) -> str | None:
    """Why the day's AI budget is spent (the ceiling is reached at >=), or None."""
    if tokens_used >= th.daily_token_ceiling:
        return f"daily token ceiling reached: {tokens_used:,} of {th.daily_token_ceiling:,} tokens used today"
    if cost_used >= th.daily_cost_ceiling:
        return f"daily cost ceiling reached: INR {cost_used:,.2f} of {th.daily_cost_ceiling:,.2f} spent today"
    return None


class DegradationPolicy:
    """The ladder's state for one review run. Thread-safe: workers record calls concurrently."""

    def __init__(self, main_model: str, light_model: str, th: Thresholds,
                 clock: Callable[[], float] = time.monotonic):
        if main_model == light_model:
            raise ValueError(f"the light model must differ from the main model ({main_model!r})")
        self.models = {Tier.MAIN: main_model, Tier.LIGHT: light_model}
        self.th = th
        self.clock = clock
        self.tier = Tier.MAIN
        self.reason: str | None = None            # why the current tier is not the main model
        self.events: list[Degradation] = []
        self._calls: dict[str, deque[Call]] = {m: deque(maxlen=th.window_calls) for m in self.models.values()}
        self._lock = threading.Lock()

    @property
    def model(self) -> str | None:
        """The model to call now, or None when no model may be called (cache or rules-only)."""
        return self.models.get(self.tier)

    def _step(self, to: Tier, reason: str) -> Degradation:
        event = Degradation(self.tier, to, self.models.get(self.tier), reason, self.clock())
        self.tier, self.reason = to, reason
        self.events.append(event)
        return event

    def record(self, call: Call) -> Degradation | None:
        """Add a finished call; when the current tier's model is now unfit, step down one tier."""
        with self._lock:
            history = self._calls.setdefault(call.model, deque(maxlen=self.th.window_calls))
            history.append(call)
            if self.models.get(self.tier) != call.model or self.tier not in _NEXT:
                return None
            why = judge(history, self.th)
            if why is None:
                return None
            return self._step(_NEXT[self.tier], f"{call.model}: {why}")

    def force(self, to: Tier, reason: str, alert: bool = True) -> Degradation | None:
        """Go to a tier for a reason found outside the calls (no usable client, review switched off). With
        alert=False it is a decision, not a degradation: no event (and so no P1)."""
        with self._lock:
            if alert:
                return self._step(to, reason)
            self.tier, self.reason = to, reason
            return None

    def check_budget(self, tokens_used: int, cost_used: float) -> Degradation | None:
        """The day's usage so far; at a ceiling every remaining pack is reviewed rules-only."""
        with self._lock:
            why = budget_reason(tokens_used, cost_used, self.th)
            if why is None or self.tier is Tier.RULES_ONLY:
                return None
            return self._step(Tier.RULES_ONLY, why)


# -- accounting ------------------------------------------------------------------------------------------------
def call_cost(total_tokens: int, cost_per_1k_tokens: float) -> float:
    """What a call costs by our rate card (INR per 1,000 total tokens), to the paisa's hundredth."""
    if total_tokens < 0:
        raise ValueError(f"token count {total_tokens} is negative")
    return round(total_tokens / 1000 * cost_per_1k_tokens, 6)


@dataclass
class Usage:
    """Tokens and cost of one day, all models; `add` is thread-safe."""
    calls: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    by_model: dict[str, dict] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, model: str, prompt_tokens: int = 0, completion_tokens: int = 0, cost: float = 0.0,
            ok: bool = True) -> None:
        with self._lock:
            m = self.by_model.setdefault(model, {"calls": 0, "failures": 0, "prompt_tokens": 0,
                                                 "completion_tokens": 0, "cost": 0.0})
            self.calls += 1
            m["calls"] += 1
            if not ok:
                self.failures += 1
                m["failures"] += 1
            self.prompt_tokens += prompt_tokens
            m["prompt_tokens"] += prompt_tokens
            self.completion_tokens += completion_tokens
            m["completion_tokens"] += completion_tokens
            self.cost = round(self.cost + cost, 6)
            m["cost"] = round(m["cost"] + cost, 6)


# -- verdicts and findings ---------------------------------------------------------------------------------------
# AI finding codes that are the same violation as a rules-engine rule merge into that rule's finding.
CODE_TO_RULE = {"BANNED_CLAIM": "CMP-BANNED-CLAIM", "DISCLAIMER_MISSING": "DISC-MISSING",
                "REGISTRATION_MISSING": "CMP-REG-MISSING"}
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,48}$")


@dataclass(frozen=True)
class Verdict:
    verdict: str                       # 'pass' or 'fail'
    findings: tuple[dict, ...] = ()    # {code, message, evidence}

    @property
    def failed(self) -> bool:
        return self.verdict == "fail"


def parse_verdict(content: str | None) -> Verdict:
    """The assistant message's JSON object; ValueError naming what is wrong (the caller names the pack)."""
    if not content:
        raise ValueError("the model returned no content")
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise ValueError(f"the model's answer is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("verdict") not in ("pass", "fail"):
        raise ValueError(f"the model's answer has no verdict 'pass' or 'fail': {str(content)[:200]!r}")
    raw = data.get("findings") or []
    if not isinstance(raw, list):
        raise ValueError("the model's findings are not a list")
    findings = []
    for i, f in enumerate(raw):
        if not isinstance(f, dict) or not isinstance(f.get("code"), str) or not _CODE.match(f["code"]):
            raise ValueError(f"finding {i} has no upper-case code: {f!r}"[:300])
        findings.append({"code": f["code"], "message": str(f.get("message") or f["code"])[:300],
                         "evidence": str(f.get("evidence") or "")[:300]})
    if data["verdict"] == "fail" and not findings:
        raise ValueError("the model failed the text without a finding")
    if data["verdict"] == "pass" and findings:
        raise ValueError("the model passed the text but listed findings")
    return Verdict(data["verdict"], tuple(findings))


def rule_id(code: str) -> str:
    return CODE_TO_RULE.get(code, "AI-" + code.replace("_", "-"))


def qc_findings(verdict: Verdict, source: str) -> list[dict]:
    """An AI verdict's findings in render QC's shape ({rule, message, detail, sources})."""
    return [{"rule": rule_id(f["code"]), "message": f["message"], "detail": f["evidence"], "sources": [source]}
            for f in verdict.findings]


def merge(rules_findings: Iterable[Mapping], ai_findings: Iterable[Mapping]) -> list[dict]:
    """Rules findings (those without `sources` are the rules engine's) with AI findings merged in: an AI finding of
    a rule already failed adds its source to that finding; any other is appended. Idempotent and order-keeping."""
    merged: list[dict] = []
    by_rule: dict[str, dict] = {}
    for f in rules_findings:
        item = {**f, "sources": sorted(set(f.get("sources") or ["rules"]))}
        merged.append(item)
        by_rule.setdefault(item["rule"], item)
    for f in ai_findings:
        existing = by_rule.get(f["rule"])
        if existing is not None:
            existing["sources"] = sorted(set(existing["sources"]) | set(f.get("sources") or []))
        else:
            item = {**f, "sources": sorted(set(f.get("sources") or []))}
            merged.append(item)
            by_rule[item["rule"]] = item
    return merged
