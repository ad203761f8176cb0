"""The AI compliance review of the nightly window end to end: the real `openai` client against the sandbox's
OpenAI-compatible endpoint over HTTP, the embedded PostgreSQL, real renders and their rules QC.

Normal review (through dag.test): the AI catches a violation the rules miss, the pack's renders fail QC and the
advisor gets fallback content. Then each degradation: a latency spike (-> the light model), an error storm (-> the
light model, then cached verdicts, else rules-only) and the daily cost ceiling (-> rules-only): each one P1 naming
its reason, and in rules-only mode packs still pass or fail QC by the rules and are marked rules-only. The sandbox's
billing ledger is the referee of our token and cost accounting."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.world import DAY, rows, scalar, seed

pytestmark = pytest.mark.e2e

CLEAN = "Markets stay volatile; review your allocation with your advisor (note {k})."
RULES_CATCH = "Guaranteed returns of 15% on our fund!"               # CMP-BANNED-CLAIM (and the AI)
AI_CATCH = "This fund is guaranteed to grow 12% every year."         # only the AI: no banned phrase


def execute(engine, sql, **params):
    with engine.begin() as conn:
        return conn.execute(sa.text(sql), params)


def add_personal_pack(engine, advisor_id: int, key: str, body: str) -> None:
    execute(engine, """
        INSERT INTO content_packs (pack_key, business_date, scope, advisor_id, title, body, disclaimer, status,
                                   approved_by, approved_at)
        SELECT :k, :d, 'advisor', :a, 'A note for you', :body, disclaimer, 'approved', 'compliance@demo', now()
        FROM content_packs WHERE pack_key = :src""", k=key, d=DAY, a=advisor_id, body=body,
            src=f"{DAY}-equity-daily")


@pytest.fixture
def world(app_db, sandbox, monkeypatch):
    """24 advisors; the 4 segment packs plus 6 personal packs (one the rules catch, one only the AI catches, four
    clean), all rendered and rules-QC'd. One call at a time so the ladder's steps are exact."""
    from include.content import nightly_window as nightly

    for name, value in {"FA_AI_REVIEW_CONCURRENCY": "1", "FA_AI_REVIEW_BATCH": "4",
                        "FA_AI_REVIEW_LATENCY_BASELINE_S": "0.1", "FA_AI_REVIEW_TIMEOUT_S": "5",
                        "FA_AI_REVIEW_MIN_CALLS": "3", "FA_AI_REVIEW_WINDOW_CALLS": "5"}.items():
        monkeypatch.setenv(name, value)
    seed(app_db, advisors=24)
    advisors = [r.advisor_id for r in rows(app_db, "SELECT advisor_id FROM eligible_advisors ORDER BY advisor_id")]
    people = {"rules": advisors[0], "ai": advisors[1], **{f"clean{k}": advisors[2 + k] for k in range(4)}}
    add_personal_pack(app_db, people["rules"], "personal-rules", RULES_CATCH)
    add_personal_pack(app_db, people["ai"], "personal-ai", AI_CATCH)
    for k in range(4):
        add_personal_pack(app_db, people[f"clean{k}"], f"personal-clean{k}", CLEAN.format(k=k))
    for b in nightly.render_batches(app_db, DAY):
        nightly.render_batch(app_db, DAY, b["batch"], b["batch_count"], "approved")
    return people


def ai_admin(sandbox, **models):
    sandbox.admin.post("/_sandbox/ai", json={"models": models}).raise_for_status()


def billed(sandbox) -> dict:
    return sandbox.admin.get("/_sandbox/ai").json()["usage"]


def review(app_db):
    from include.content.ai_review import review_packs

    return review_packs(app_db, DAY)


def modes(engine) -> dict[str, str]:
    return {r.pack_key: r.mode for r in rows(engine, """
        SELECT p.pack_key, x.mode FROM pack_compliance_reviews x JOIN content_packs p USING (pack_id)
        WHERE x.business_date = :d""", d=DAY)}


def render_qc(engine, advisor_id: int, pack_key: str) -> tuple[str, list]:
    r = rows(engine, """SELECT r.qc_status, r.qc_reasons FROM renders r JOIN content_packs p USING (pack_id)
                        WHERE r.business_date = :d AND r.advisor_id = :a AND p.pack_key = :k""",
             d=DAY, a=advisor_id, k=pack_key)[0]
    return r.qc_status, [(f["rule"], f["sources"]) for f in r.qc_reasons]


def ai_p1s(sandbox) -> list[str]:
    return [p["payload"]["text"] for p in sandbox.slack_posts()
            if p["payload"]["text"].startswith("[P1]") and "AI compliance review degraded" in p["payload"]["text"]]


def p1_reasons(sandbox) -> list[str]:
    out = []
    for p in sandbox.slack_posts():
        if "AI compliance review degraded" in p["payload"]["text"]:
            out.append(str(p["payload"]["blocks"]))
    return out


def assert_accounting_matches_the_bill(app_db, sandbox):
    """Our per-day usage (tokens from the responses, cost from our rate card) equals what the service billed."""
    ours = {r.model: r for r in rows(app_db, "SELECT * FROM ai_usage_daily")}
    bill = billed(sandbox)
    assert set(ours) == set(bill)
    for model, b in bill.items():
        assert (ours[model].calls, ours[model].failures) == (b["calls"], b["errors"])
        assert (ours[model].prompt_tokens, ours[model].completion_tokens, ours[model].total_tokens) == (
            b["prompt_tokens"], b["completion_tokens"], b["total_tokens"])
        assert float(ours[model].cost) == pytest.approx(b["billed_cost"], abs=1e-5)


def test_ai_catches_what_the_rules_miss_and_the_advisor_gets_fallback_content(world, app_db, sandbox, receiver,
                                                                             airflow_db):
    from tests.support import load_dag

    dag = load_dag("nightly_content_window")
    dr = dag.test(run_conf={"business_date": str(DAY)})
    assert dr.state == "success"
    assert set(modes(app_db).values()) == {"ai"} and len(modes(app_db)) == 10
    # The rules passed the AI-only pack; the AI failed it, and its render failed QC with the AI as the source.
    assert render_qc(app_db, world["ai"], "personal-ai") == ("failed", [("AI-MISLEADING-ASSURANCE", ["ai:gpt-4o"])])
    # The same violation from both engines is one finding with both sources.
    assert render_qc(app_db, world["rules"], "personal-rules") == (
        "failed", [("CMP-BANNED-CLAIM", ["ai:gpt-4o", "rules"])])
    assert render_qc(app_db, world["clean0"], "personal-clean0") == ("passed", [])
    # Both advisors got an evergreen fallback with a QC-passed render; the clean ones kept their pack.
    got = {r.advisor_id: (r.source, r.qc_status) for r in rows(app_db, """
        SELECT x.advisor_id, x.source, r.qc_status FROM pack_assignments x JOIN renders r USING (render_id)
        WHERE x.business_date = :d AND x.advisor_id = ANY(:a)""", d=DAY, a=list(world.values()))}
    assert got[world["ai"]] == got[world["rules"]] == ("fallback", "passed")
    assert got[world["clean0"]] == ("approved", "passed")
    assert ai_p1s(sandbox) == []
    summary = [p["payload"] for p in sandbox.slack_posts() if "Nightly content window" in p["payload"]["text"]][-1]
    assert "ai_compliance_review" in str(summary["blocks"]) and "2 failed by AI" in str(summary["blocks"])
    assert_accounting_matches_the_bill(app_db, sandbox)
    calls = sum(u["calls"] for u in billed(sandbox).values())
    assert calls == 10

    # A rerun: unchanged text is not sent again, and nothing changes.
    reviewed_at = scalar(app_db, "SELECT max(reviewed_at) FROM pack_compliance_reviews")
    dr = dag.test(run_conf={"business_date": str(DAY)})
    assert dr.state == "success"
    assert sum(u["calls"] for u in billed(sandbox).values()) == calls
    assert scalar(app_db, "SELECT max(reviewed_at) FROM pack_compliance_reviews") == reviewed_at


def test_latency_spike_switches_to_the_light_model_with_one_p1(world, app_db, sandbox):
    ai_admin(sandbox, **{"gpt-4o": {"latency_s": 0.3}})       # 0.3 s > 2 x the 0.1 s baseline
    result = review(app_db)
    got = modes(app_db)
    # Ordered by pack: the 3 calls that showed the spike were answered (slowly) by the main model, the rest by the
    # light one, which still catches the AI-only violation.
    assert sorted(got.values()) == ["ai"] * 3 + ["ai_light"] * 7
    assert billed(sandbox)["gpt-4o"]["calls"] == 3 and billed(sandbox)["gpt-4o-mini"]["calls"] == 7
    assert render_qc(app_db, world["ai"], "personal-ai") == (
        "failed", [("AI-MISLEADING-ASSURANCE", ["ai:gpt-4o-mini"])])
    assert len(ai_p1s(sandbox)) == 1 and "light model gpt-4o-mini" in ai_p1s(sandbox)[0]
    assert "median latency" in p1_reasons(sandbox)[0] and "0.1 s baseline" in p1_reasons(sandbox)[0]
    assert result.severity.value == "P1"
    reason = scalar(app_db, """SELECT reason FROM pack_compliance_reviews x JOIN content_packs p USING (pack_id)
                               WHERE p.pack_key = 'personal-ai'""")
    assert "gpt-4o: median latency" in reason
    assert_accounting_matches_the_bill(app_db, sandbox)


def test_error_storm_goes_light_then_cached_verdicts_else_rules_only(world, app_db, sandbox):
    from include.content import nightly_window as nightly

    review(app_db)                                    # a healthy night first: every text has a verdict
    assert set(modes(app_db).values()) == {"ai"}
    # Three segment packs are edited (new text, no verdict yet) and re-rendered; then both models fail.
    first3 = [r.pack_key for r in rows(app_db, """SELECT pack_key FROM content_packs WHERE business_date = :d
              AND status = 'approved' ORDER BY pack_id LIMIT 3""", d=DAY)]
    execute(app_db, "UPDATE content_packs SET body = body || ' Updated.' WHERE pack_key = ANY(:k)", k=first3)
    for b in nightly.render_batches(app_db, DAY):
        nightly.render_batch(app_db, DAY, b["batch"], b["batch_count"], "approved")
    ai_admin(sandbox, **{"gpt-4o": {"error_rate": 1.0, "error_status": 503},
                         "gpt-4o-mini": {"error_rate": 1.0, "error_status": 429}})
    before = billed(sandbox)

    result = review(app_db)
    got = modes(app_db)
    # Edited texts have no earlier verdict: rules-only. Unchanged texts keep their earlier verdict: cache.
    assert {k: got[k] for k in first3} == dict.fromkeys(first3, "rules_only")
    assert {k for k, m in got.items() if m == "cache"} == set(got) - set(first3)
    after = billed(sandbox)
    assert after["gpt-4o"]["errors"] - before["gpt-4o"]["errors"] == 3      # 3 failures: the light model
    assert "gpt-4o-mini" not in before and after["gpt-4o-mini"]["errors"] == 3      # 3 more: cache
    p1s = ai_p1s(sandbox)
    assert len(p1s) == 2, [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert len(p1s) == 2 and "light model" in p1s[0] and "cached verdicts" in p1s[1]
    reasons = p1_reasons(sandbox)
    assert "gpt-4o: failure rate 100%" in reasons[0] and "gpt-4o-mini: failure rate 100%" in reasons[1]
    assert [d["to"] for d in result.facts["degradations"]] == ["ai_light", "cache"]
    # The cached verdict still fails the AI-only pack; the rules-only packs are decided by the rules (clean: pass).
    assert render_qc(app_db, world["ai"], "personal-ai")[0] == "failed"
    assert scalar(app_db, """SELECT count(*) FROM renders r JOIN content_packs p USING (pack_id)
                             WHERE r.business_date = :d AND p.pack_key = ANY(:k) AND r.qc_status <> 'passed'""",
                  d=DAY, k=first3) == 0
    assert_accounting_matches_the_bill(app_db, sandbox)


def test_cost_ceiling_means_rules_only_and_qc_still_decides_by_the_rules(world, app_db, sandbox, monkeypatch):
    from include.content import nightly_window as nightly

    monkeypatch.setenv("FA_AI_REVIEW_DAILY_COST_CEILING", "0.05")   # INR: one call (~0.13) spends it
    result = review(app_db)
    got = modes(app_db)
    assert sorted(got.values()) == ["ai"] + ["rules_only"] * 9
    assert sum(u["calls"] for u in billed(sandbox).values()) == 1
    assert scalar(app_db, "SELECT count(*) FROM pack_compliance_reviews WHERE mode = 'rules_only' "
                          "AND reason LIKE 'daily cost ceiling reached%'") == 9
    p1s = ai_p1s(sandbox)
    assert len(p1s) == 1 and "rules-only" in p1s[0] and "daily cost ceiling reached" in p1_reasons(sandbox)[0]
    assert result.facts["modes"] == {"ai": 1, "rules_only": 9}
    # Rules-only: the banned claim still fails QC (rules as its only source); the AI-only violation is not seen,
    # its pack passes and is marked rules-only; clean packs pass.
    assert render_qc(app_db, world["rules"], "personal-rules") == ("failed", [("CMP-BANNED-CLAIM", ["rules"])])
    assert render_qc(app_db, world["ai"], "personal-ai") == ("passed", [])
    assert got["personal-ai"] == got["personal-rules"] == "rules_only"
    assert render_qc(app_db, world["clean3"], "personal-clean3") == ("passed", [])
    out = nightly.assign_fallbacks(app_db, DAY)
    assert out["assigned"] == out["eligible"]
    src = {r.advisor_id: r.source for r in rows(app_db, "SELECT advisor_id, source FROM pack_assignments "
                                                        "WHERE business_date = :d", d=DAY)}
    assert src[world["rules"]] == "fallback" and src[world["ai"]] == "approved"
    assert_accounting_matches_the_bill(app_db, sandbox)
    # Later the same day the ceiling still holds: no call at all, and no second P1.
    review(app_db)
    assert sum(u["calls"] for u in billed(sandbox).values()) == 1 and len(ai_p1s(sandbox)) == 1
