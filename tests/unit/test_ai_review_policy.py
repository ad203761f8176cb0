"""The AI compliance review's pure policies (include/content/ai_policy.py): the degradation ladder, the budget,
merging AI findings into render QC's, token and cost accounting, and reading a model's answer."""
from __future__ import annotations

import json

import pytest

from include.content.ai_policy import (
    Call, DegradationPolicy, Thresholds, Tier, Usage, Verdict, budget_reason, call_cost, judge, merge,
    parse_verdict, qc_findings,
)

TH = Thresholds(latency_baseline_s=1.5, latency_factor=2.0, max_failure_rate=0.3, window_calls=5, min_calls=3,
                daily_token_ceiling=1000, daily_cost_ceiling=10.0)


def calls(*spec, model="m"):
    """`spec`: (latency_s, ok) pairs."""
    return [Call(model, lat, ok) for lat, ok in spec]


@pytest.mark.parametrize("history, expected", [
    ([], None),
    ([(9.0, False)] * 2, None),                                     # fewer than min_calls: not judged
    ([(1.0, True)] * 5, None),                                      # healthy
    ([(3.0, True)] * 5, None),                                      # exactly 2x baseline is not above it
    ([(3.1, True)] * 3, "median latency 3.10 s"),                   # above 2 x 1.5 s
    ([(0.2, True), (9.0, True), (0.2, True)], None),                # one slow call: the median is fine
    ([(0.2, True)] * 4 + [(0.2, False)], None),                     # 20% failures <= 30%
    ([(0.2, True)] * 3 + [(0.2, False)] * 2, "failure rate 40%"),   # 40% > 30%
    ([(0.2, False)] * 5 + [(0.2, True)] * 5, None),                 # only the last 5 calls count
    ([(5.0, False)] * 3, "failure rate 100%"),                      # failures are named before latency
])
def test_judge(history, expected):
    why = judge(calls(*history), TH)
    assert (why is None) if expected is None else (why is not None and expected in why), why


@pytest.mark.parametrize("tokens, cost, expected", [
    (0, 0.0, None),
    (999, 9.99, None),
    (1000, 0.0, "daily token ceiling reached: 1,000 of 1,000"),
    (10, 10.0, "daily cost ceiling reached: INR 10.00 of 10.00"),
])
def test_budget_reason(tokens, cost, expected):
    why = budget_reason(tokens, cost, TH)
    assert (why is None) if expected is None else (expected in why), why


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_ladder_main_light_cache_with_one_event_each_and_an_injected_clock():
    clock = FakeClock()
    policy = DegradationPolicy("big", "small", TH, clock=clock)
    assert (policy.tier, policy.model) == (Tier.MAIN, "big")
    for _ in range(2):
        assert policy.record(Call("big", 4.0, True)) is None
    clock.now = 130.0
    event = policy.record(Call("big", 4.0, True))
    assert event is not None and (event.from_tier, event.to_tier, event.at) == (Tier.MAIN, Tier.LIGHT, 130.0)
    assert "big: median latency 4.00 s" in event.reason and (policy.tier, policy.model) == (Tier.LIGHT, "small")
    # A late answer of the main model does not move the ladder again.
    assert policy.record(Call("big", 9.0, False)) is None
    for _ in range(2):
        assert policy.record(Call("small", 0.1, False)) is None
    event = policy.record(Call("small", 0.1, False))
    assert (event.to_tier, policy.model) == (Tier.CACHE, None) and "small: failure rate 100%" in event.reason
    assert policy.record(Call("small", 0.1, False)) is None           # the bottom of the ladder: nothing more
    assert [e.key for e in policy.events] == ["ai_review:ai->ai_light", "ai_review:ai_light->cache"]


@pytest.mark.parametrize("start", [Tier.MAIN, Tier.LIGHT, Tier.CACHE])
def test_budget_means_rules_only_from_any_tier_once(start):
    policy = DegradationPolicy("big", "small", TH)
    policy.tier = start
    assert policy.check_budget(999, 1.0) is None
    event = policy.check_budget(1000, 1.0)
    assert (event.from_tier, event.to_tier) == (start, Tier.RULES_ONLY) and policy.model is None
    assert policy.check_budget(5000, 50.0) is None and len(policy.events) == 1


def test_same_model_twice_is_refused():
    with pytest.raises(ValueError, match="light model must differ"):
        DegradationPolicy("m", "m", TH)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_failure_rate": 1.0}, "max failure rate"),
    ({"min_calls": 0}, "min_calls"),
    ({"min_calls": 11, "window_calls": 10}, "min_calls"),
    ({"latency_baseline_s": 0}, "positive"),
])
def test_bad_thresholds_are_refused_with_the_reason(kwargs, match):
    import dataclasses

    with pytest.raises(ValueError, match=match):
        Thresholds(**{**dataclasses.asdict(TH), "window_calls": 10, **kwargs})


# -- accounting -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tokens, rate, cost", [(0, 0.42, 0.0), (1000, 0.42, 0.42), (322, 0.42, 0.13524),
                                                (2_000_000, 0.05, 100.0)])
def test_call_cost(tokens, rate, cost):
    assert call_cost(tokens, rate) == pytest.approx(cost)


def test_call_cost_refuses_negative_tokens():
    with pytest.raises(ValueError, match="negative"):
        call_cost(-1, 0.42)


def test_usage_adds_per_model_and_in_total():
    u = Usage()
    u.add("big", 200, 50, call_cost(250, 0.42))
    u.add("big", 0, 0, 0.0, ok=False)
    u.add("small", 100, 20, call_cost(120, 0.05))
    assert (u.calls, u.failures, u.prompt_tokens, u.completion_tokens, u.total_tokens) == (3, 1, 300, 70, 370)
    assert u.cost == pytest.approx(0.105 + 0.006)
    assert u.by_model["big"] == {"calls": 2, "failures": 1, "prompt_tokens": 200, "completion_tokens": 50,
                                 "cost": pytest.approx(0.105)}


# -- findings -------------------------------------------------------------------------------------------------
BANNED = {"rule": "CMP-BANNED-CLAIM", "message": "No banned claims", "detail": "banned claim(s): 'risk-free'"}
REG = {"rule": "CMP-REG-MISSING", "message": "registration", "detail": "missing", "sources": ["rules"]}


@pytest.mark.parametrize("rules, ai, expected", [
    ([], [], []),
    ([BANNED], [], [(BANNED["rule"], ["rules"])]),                       # old rows without sources: the rules'
    ([], [("MISLEADING_ASSURANCE", "ai:big")], [("AI-MISLEADING-ASSURANCE", ["ai:big"])]),
    ([BANNED], [("BANNED_CLAIM", "ai:big")], [("CMP-BANNED-CLAIM", ["ai:big", "rules"])]),   # same violation
    ([REG], [("DISCLAIMER_MISSING", "cache")], [("CMP-REG-MISSING", ["rules"]), ("DISC-MISSING", ["cache"])]),
    ([BANNED, REG], [("MISLEADING_ASSURANCE", "ai:small"), ("BANNED_CLAIM", "ai:small")],
     [("CMP-BANNED-CLAIM", ["ai:small", "rules"]), ("CMP-REG-MISSING", ["rules"]),
      ("AI-MISLEADING-ASSURANCE", ["ai:small"])]),
])
def test_merge(rules, ai, expected):
    ai_findings = [f for code, source in ai
                   for f in qc_findings(Verdict("fail", ({"code": code, "message": "m", "evidence": "e"},)), source)]
    merged = merge(rules, ai_findings)
    assert [(f["rule"], f["sources"]) for f in merged] == expected
    assert merge(merged, ai_findings) == merged                          # idempotent: a rerun changes nothing


# -- answers -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content, match", [
    (None, "no content"),
    ("not json", "not JSON"),
    ('{"verdict": "maybe"}', "no verdict"),
    ('{"verdict": "fail", "findings": []}', "without a finding"),
    ('{"verdict": "pass", "findings": [{"code": "BANNED_CLAIM"}]}', "passed the text but listed"),
    ('{"verdict": "fail", "findings": [{"code": "lower"}]}', "no upper-case code"),
    ('{"verdict": "fail", "findings": "x"}', "not a list"),
])
def test_unusable_answers_are_refused_with_the_reason(content, match):
    with pytest.raises(ValueError, match=match):
        parse_verdict(content)


def test_a_verdict_is_read():
    v = parse_verdict(json.dumps({"verdict": "fail", "findings": [
        {"code": "MISLEADING_ASSURANCE", "message": "promises", "evidence": "guaranteed to grow"}]}))
    assert v.failed and v.findings[0]["evidence"] == "guaranteed to grow"
    assert parse_verdict('{"verdict": "pass", "findings": []}') == Verdict("pass")


# -- the sandbox's rules (the e2e tests rely on them) ------------------------------------------------------------
DISC = ("Investments in securities market are subject to market risks. Read all the related documents carefully "
        "before investing.")


@pytest.mark.parametrize("title, body, disclaimer, codes", [
    ("Market view", "Markets remain volatile; stay invested as per your plan.", DISC, []),
    ("Offer", "Guaranteed returns of 15% on our fund!", DISC, ["BANNED_CLAIM"]),
    ("Offer", "This fund is guaranteed to grow 12% every year.", DISC, ["MISLEADING_ASSURANCE"]),
    ("You can't lose", "Buy now.", DISC, ["MISLEADING_ASSURANCE"]),
    ("Market view", "Stay invested.", "", ["DISCLAIMER_MISSING"]),
    # The disclaimer's own "in no way guarantee performance" is not a claim.
    ("Market view", "Stay invested.", DISC + " Registration ... in no way guarantee performance.", []),
])
def test_sandbox_reviewer(title, body, disclaimer, codes):
    from devtools.sandbox.ai_compliance import review

    out = review(json.dumps({"title": title, "body": body, "disclaimer": disclaimer}))
    assert [f["code"] for f in out["findings"]] == codes
    assert out["verdict"] == ("fail" if codes else "pass")
