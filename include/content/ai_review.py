"""AI compliance review of the nightly window (issue 18 §2; runbooks 000 "AI service degradation", 003 "AI token
budget", 004 "compliance engine response < 1.5 s").

After the renders and their rules-engine QC, every approved daily pack's text (title, body, disclaimer) is read by
an AI compliance service: an OpenAI-compatible chat-completions endpoint, called with the official `openai`
client at the base URL of the `ai_compliance` Airflow connection (production: the provider; locally: the
sandbox). The model answers a JSON verdict; a violation fails every render of the pack exactly like a rules
finding does (its findings merged into the render's `qc_reasons` with their source), so the content assignment
that follows gives those advisors an evergreen fallback.

Verdicts are stored by (text hash, model) and reused for unchanged text: an unchanged rerun calls no model.
Degradation (include/content/ai_policy.py): a slow or failing main model -> the lighter model -> earlier verdicts
for unchanged text, else rules-only; the day's token or cost ceiling -> rules-only. Each degradation is one P1 per
business date naming the reason. Packs reviewed rules-only are marked so in `pack_compliance_reviews` (the rules
engine alone decided their QC). Backpressure: at most AI_REVIEW_CONCURRENCY calls in flight, packs submitted in
batches of AI_REVIEW_BATCH, a timeout on every call and no client-side retries (the ladder decides).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from include.content.ai_policy import (
    Call, Degradation, DegradationPolicy, Thresholds, Tier, Usage, Verdict, call_cost, merge, parse_verdict,
    qc_findings,
)
from include.core import config
from include.core.alerting import Alert, RunRef, Severity, post_once
from include.core.checks import CheckResult
from include.core.db import query

log = logging.getLogger(__name__)

PROMPT_VERSION = "ai-compliance/1"   # part of every text hash: bump it when the prompt changes
MAX_ATTEMPTS_PER_PACK = 2
SYSTEM_PROMPT = (
    "You review marketing messages that Indian SEBI-registered investment advisers and AMFI-registered mutual "
    "fund distributors send to their clients, against SEBI's advertisement code. The user message is a JSON "
    "object with the pack's title, body and disclaimer. Flag banned claims (guaranteed or assured returns, "
    "risk-free, double your money and the like), any wording that promises an outcome or denies the possibility "
    "of loss, insider information, and a missing or incomplete SEBI disclaimer ('Investments in securities "
    "market are subject to market risks. Read all the related documents carefully before investing.'). "
    'Answer only with a JSON object: {"verdict": "pass" | "fail", "findings": [{"code": "UPPER_SNAKE_CASE", '
    '"message": "...", "evidence": "the words at fault"}]}. Codes: BANNED_CLAIM, MISLEADING_ASSURANCE, '
    "INSIDER_INFORMATION, DISCLAIMER_MISSING. A pass has no findings."
)


class AIReviewError(RuntimeError):
    """A call that produced no usable answer (HTTP error, timeout, connection failure)."""


@dataclass(frozen=True)
class PackText:
    pack_id: int
    pack_key: str
    title: str
    body: str
    disclaimer: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(chr(31).join((PROMPT_VERSION, self.title, self.body, self.disclaimer))
                              .encode()).hexdigest()

    def user_message(self) -> str:
        return json.dumps({"pack_key": self.pack_key, "title": self.title, "body": self.body,
                           "disclaimer": self.disclaimer}, ensure_ascii=False)


@dataclass(frozen=True)
class Answer:
    content: str | None
    prompt_tokens: int
    completion_tokens: int


class ComplianceClient:
    """The official `openai` client over an OpenAI-compatible base URL; one chat completion per pack."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float | None = None,
                 max_completion_tokens: int | None = None):
        from openai import OpenAI

        if not base_url:
            raise ValueError("the AI compliance service has no base URL (connection host)")
        self.base_url = base_url
        self.timeout_s = config.AI_REVIEW_TIMEOUT_S if timeout_s is None else timeout_s
        self.max_completion_tokens = (config.AI_REVIEW_MAX_COMPLETION_TOKENS if max_completion_tokens is None
                                      else max_completion_tokens)
        # No client retries: a failed call is evidence for the degradation ladder, which decides what happens next.
        self._client = OpenAI(base_url=base_url, api_key=api_key or "unset", max_retries=0, timeout=self.timeout_s)

    @classmethod
    def from_connection(cls, conn_id: str = config.AI_COMPLIANCE_CONN_ID) -> ComplianceClient:
        """host = base URL (e.g. https://api.openai.com/v1), password = API key; extra.base_url overrides host."""
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        extra = conn.extra_dejson or {}
        base = extra.get("base_url") or conn.host or ""
        if base and "://" not in base:
            base = f"https://{base}{f':{conn.port}' if conn.port else ''}"
        return cls(base, conn.password or "")

    def call(self, model: str, pack: PackText) -> Answer:
        import openai

        try:
            resp = self._client.chat.completions.create(
                model=model, temperature=0, max_completion_tokens=self.max_completion_tokens,
                response_format={"type": "json_object"},
                messages=[{"role": "system", "content": SYSTEM_PROMPT},
                          {"role": "user", "content": pack.user_message()}])
        except openai.APITimeoutError:
            raise AIReviewError(f"{model} timed out after {self.timeout_s:g} s") from None
        except openai.APIStatusError as exc:
            raise AIReviewError(f"{model} answered HTTP {exc.status_code}: {str(exc.message)[:200]}") from None
        except openai.APIConnectionError as exc:
            raise AIReviewError(f"{model} unreachable at {self.base_url}: {exc}") from None
        except openai.OpenAIError as exc:
            raise AIReviewError(f"{model}: {type(exc).__name__}: {exc}") from None
        content = resp.choices[0].message.content if resp.choices else None
        usage = resp.usage
        if usage is None:
            log.warning("%s returned no usage for %s: counted as 0 tokens", model, pack.pack_key)
        return Answer(content, getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class PackOutcome:
    pack: PackText
    mode: Tier
    source: str                 # 'ai:<model>', 'cache' or 'rules'
    model: str | None
    verdict: Verdict | None     # None: rules-only
    reason: str | None          # why not the main model (degradation, failed calls)


def _rate(model: str) -> float:
    if model == config.AI_REVIEW_MODEL:
        return config.AI_REVIEW_COST_PER_1K_TOKENS
    if model == config.AI_REVIEW_LIGHT_MODEL:
        return config.AI_REVIEW_LIGHT_COST_PER_1K_TOKENS
    raise ValueError(f"no rate card for model {model!r} (FA_AI_REVIEW_MODEL / FA_AI_REVIEW_LIGHT_MODEL)")


def _load_packs(engine: Engine, business_date: dt.date) -> list[PackText]:
    with engine.connect() as conn:
        rows = conn.execute(query("ai_review/approved_packs"), {"business_date": business_date}).fetchall()
    return [PackText(r.pack_id, r.pack_key, r.title, r.body, r.disclaimer or "") for r in rows]


def _load_verdicts(engine: Engine, hashes: list[str]) -> tuple[dict[tuple[str, str], Verdict], dict[str, tuple]]:
    """(verdict by (hash, model), newest (model, verdict) by hash)."""
    exact: dict[tuple[str, str], Verdict] = {}
    newest: dict[str, tuple[str, Verdict]] = {}
    if not hashes:
        return exact, newest
    with engine.connect() as conn:
        for r in conn.execute(query("ai_review/verdicts_for_texts"), {"hashes": hashes}):
            v = Verdict(r.verdict, tuple(r.findings or ()))
            exact[(r.text_sha256, r.model)] = v
            newest.setdefault(r.text_sha256, (r.model, v))
    return exact, newest


class _Run:
    """One review run: the client, the ladder, the day's usage, the verdict cache."""

    def __init__(self, engine: Engine, client, policy: DegradationPolicy, today: dt.date):
        self.engine, self.client, self.policy, self.today = engine, client, policy, today
        with engine.connect() as conn:
            row = conn.execute(query("ai_review/usage_for_day"), {"usage_day": today}).one()
        self.tokens_before, self.cost_before = int(row.tokens), float(row.cost)
        self.usage = Usage()
        self.exact: dict[tuple[str, str], Verdict] = {}
        self.newest: dict[str, tuple[str, Verdict]] = {}

    def spent(self) -> tuple[int, float]:
        return self.tokens_before + self.usage.total_tokens, self.cost_before + self.usage.cost

    def _account(self, model: str, answer: Answer | None, ok: bool) -> None:
        prompt = answer.prompt_tokens if answer else 0
        completion = answer.completion_tokens if answer else 0
        cost = call_cost(prompt + completion, _rate(model))
        self.usage.add(model, prompt, completion, cost, ok)
        with self.engine.begin() as conn:
            conn.execute(query("ai_review/usage_add"), {
                "usage_day": self.today, "model": model, "ok": ok, "prompt_tokens": prompt,
                "completion_tokens": completion, "cost": cost})

    def _store(self, pack: PackText, model: str, verdict: Verdict, answer: Answer, latency_s: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(query("ai_review/verdict_upsert"), {
                "text_sha256": pack.sha256, "model": model, "verdict": verdict.verdict,
                "findings": json.dumps(list(verdict.findings)), "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "cost": call_cost(answer.prompt_tokens + answer.completion_tokens, _rate(model)),
                "latency_ms": max(0, round(latency_s * 1000)), "pack_key": pack.pack_key})
        self.exact[(pack.sha256, model)] = verdict
        self.newest[pack.sha256] = (model, verdict)

    def review(self, pack: PackText) -> PackOutcome:
        h, policy = pack.sha256, self.policy
        attempts, last_error = 0, None
        while True:
            policy.check_budget(*self.spent())
            tier, model = policy.tier, policy.model
            if model is None:
                break
            why = None if tier is Tier.MAIN else policy.reason
            if (h, model) in self.exact:  # unchanged text this model already judged: no call
                return PackOutcome(pack, tier, f"ai:{model}", model, self.exact[(h, model)], why)
            if attempts >= MAX_ATTEMPTS_PER_PACK:
                break
            attempts += 1
            started = policy.clock()
            try:
                answer = self.client.call(model, pack)
            except Exception as exc:  # noqa: BLE001 - any failure of the call is evidence for the ladder
                last_error = f"{pack.pack_key}: {exc}"
                log.warning("AI review call failed: %s", last_error)
                self._account(model, None, ok=False)
                policy.record(Call(model, policy.clock() - started, ok=False))
                continue
            latency = policy.clock() - started
            try:
                verdict = parse_verdict(answer.content)
            except ValueError as exc:
                last_error = f"{pack.pack_key}: {model} gave an unusable answer: {exc}"
                log.warning("AI review: %s", last_error)
                self._account(model, answer, ok=False)
                policy.record(Call(model, latency, ok=False))
                continue
            self._account(model, answer, ok=True)
            self._store(pack, model, verdict, answer, latency)
            policy.record(Call(model, latency, ok=True))
            return PackOutcome(pack, tier, f"ai:{model}", model, verdict, why)
        reason = policy.reason or last_error or "no AI verdict"
        if policy.tier is not Tier.RULES_ONLY and h in self.newest:
            model, verdict = self.newest[h]
            return PackOutcome(pack, Tier.CACHE, "cache", model, verdict, reason)
        return PackOutcome(pack, Tier.RULES_ONLY, "rules", None, None, reason)


def _apply(engine: Engine, business_date: dt.date, outcome: PackOutcome) -> int:
    """Merge a failing verdict into the pack's renders (QC fails like a rules finding) and record the pack's
    review. Returns the renders that carry an AI finding. Idempotent: an unchanged rerun writes nothing."""
    failed = 0
    with engine.begin() as conn:
        if outcome.verdict is not None and outcome.verdict.failed:
            ai = qc_findings(outcome.verdict, outcome.source)
            updates = []
            for r in conn.execute(query("ai_review/pack_renders"), {"business_date": business_date,
                                                                   "pack_id": outcome.pack.pack_id}):
                merged = merge(r.qc_reasons or [], ai)
                failed += 1
                if r.qc_status != "failed" or merged != r.qc_reasons:
                    updates.append({"render_id": r.render_id, "qc_reasons": json.dumps(merged)})
            if updates:
                conn.execute(query("ai_review/render_fail"), updates)
        conn.execute(query("ai_review/pack_review_upsert"), {
            "business_date": business_date, "pack_id": outcome.pack.pack_id, "text_sha256": outcome.pack.sha256,
            "mode": outcome.mode.value, "source": outcome.source, "model": outcome.model,
            "verdict": outcome.verdict.verdict if outcome.verdict else None,
            "findings": json.dumps(list(outcome.verdict.findings) if outcome.verdict else []),
            "reason": outcome.reason, "renders_failed": failed})
    return failed


def _alert(engine: Engine, business_date: dt.date, event: Degradation, context: Mapping[str, Any] | None) -> None:
    titles = {Tier.LIGHT: f"AI compliance review degraded to the light model {config.AI_REVIEW_LIGHT_MODEL}",
              Tier.CACHE: "AI compliance review degraded to cached verdicts (else rules-only)",
              Tier.RULES_ONLY: "AI compliance review degraded to rules-only"}
    post_once(engine, business_date, f"{event.key}:{business_date}", Alert(
        Severity.P1, f"{titles[event.to_tier]} for {business_date}",
        {"reason": event.reason, "from": event.from_tier.value, "to": event.to_tier.value,
         "model": event.model or "n/a"},
        RunRef.from_context(context),
        ["Runbook 000 'AI service degradation': the rules engine still gates every pack; packs reviewed without "
         "the main model are listed in pack_compliance_reviews."]))


def _alert_new(engine: Engine, business_date: dt.date, policy: DegradationPolicy, posted: int,
               context: Mapping[str, Any] | None) -> int:
    """Post the degradations not posted yet (workers may add more meanwhile); returns how many are posted."""
    new = list(policy.events[posted:])
    for event in new:
        _alert(engine, business_date, event, context)
    return posted + len(new)


def review_packs(engine: Engine, business_date: dt.date, client=None, *, policy: DegradationPolicy | None = None,
                 today: dt.date | None = None, context: Mapping[str, Any] | None = None,
                 client_factory: Callable[[], Any] | None = None) -> CheckResult:
    """Review the date's approved packs; returns the check result the window's summary reports."""
    result = CheckResult("ai_compliance_review")
    packs = _load_packs(engine, business_date)
    policy = policy or DegradationPolicy(config.AI_REVIEW_MODEL, config.AI_REVIEW_LIGHT_MODEL,
                                         Thresholds.from_config())
    today = today or dt.datetime.now(config.IST).date()
    outcomes: list[PackOutcome] = []
    owned = None
    if packs and client is None and config.AI_REVIEW_ENABLED:
        try:
            client = owned = (client_factory or ComplianceClient.from_connection)()
        except Exception as exc:  # noqa: BLE001 - no client: every pack rules-only, with a P1
            policy.force(Tier.RULES_ONLY, f"AI compliance service not usable: {type(exc).__name__}: {exc}")
    if not config.AI_REVIEW_ENABLED:
        policy.force(Tier.RULES_ONLY, "AI review disabled (FA_AI_REVIEW_ENABLED=false)", alert=False)
    run = _Run(engine, client, policy, today)
    run.exact, run.newest = _load_verdicts(engine, sorted({p.sha256 for p in packs}))
    posted = 0
    renders_failed = 0
    try:
        with ThreadPoolExecutor(max_workers=max(1, config.AI_REVIEW_CONCURRENCY),
                                thread_name_prefix="ai-review") as pool:
            batch_size = max(1, config.AI_REVIEW_BATCH)
            for start in range(0, len(packs), batch_size):
                futures = [pool.submit(run.review, p) for p in packs[start:start + batch_size]]
                for fut in as_completed(futures):
                    outcome = fut.result()
                    outcomes.append(outcome)
                    renders_failed += _apply(engine, business_date, outcome)
                    posted = _alert_new(engine, business_date, policy, posted, context)
        _alert_new(engine, business_date, policy, posted, context)
    finally:
        if owned is not None:
            owned.close()

    modes = Counter(o.mode.value for o in outcomes)
    ai_failed = sorted(o.pack.pack_key for o in outcomes if o.verdict is not None and o.verdict.failed)
    rules_only = sorted(o.pack.pack_key for o in outcomes if o.mode is Tier.RULES_ONLY)
    tokens, cost = run.spent()
    result.facts.update(
        packs=len(packs), modes=dict(sorted(modes.items())), failed_by_ai=ai_failed, renders_failed=renders_failed,
        rules_only=rules_only[:50], tokens_this_run=run.usage.total_tokens, cost_this_run=round(run.usage.cost, 4),
        tokens_today=tokens, cost_today=round(cost, 4), usage_by_model=run.usage.by_model,
        degradations=[{"from": e.from_tier.value, "to": e.to_tier.value, "reason": e.reason}
                      for e in policy.events])
    for e in policy.events:
        result.escalate(Severity.P1, f"degraded {e.from_tier.value} -> {e.to_tier.value}: {e.reason}")
    result.summary = (f"{len(packs)} packs: " + (", ".join(f"{k} {v}" for k, v in sorted(modes.items())) or "none")
                      + f"; {len(ai_failed)} failed by AI ({renders_failed} renders); {run.usage.total_tokens:,} "
                        f"tokens, INR {run.usage.cost:.2f}")
    log.info("AI compliance review for %s: %s", business_date, result.summary)
    return result
