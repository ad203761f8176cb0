"""Deterministic demo world: advisors, DNC list, sending numbers, templates and content packs.

Seeded and idempotent: the same (seed, N) always produces the same rows, and seeding twice
changes nothing. About 0.5% of generated phone numbers are malformed on purpose; they go through
the real import path and come back in the import report instead of being inserted.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.core.advisor_import import ImportReport, import_advisors
from include.core.config import SEBI_DISCLAIMER, SEGMENTS
from include.core.dates import ist_today
from include.core.db import query

log = logging.getLogger(__name__)

FIRST = ("Aarav", "Vivaan", "Aditya", "Vihaan", "Arjun", "Sai", "Reyansh", "Krishna", "Ishaan", "Rohan",
         "Ananya", "Diya", "Aadhya", "Saanvi", "Pari", "Anika", "Navya", "Myra", "Sara", "Meera",
         "Kavya", "Priya", "Rahul", "Suresh", "Lakshmi", "Deepak", "Neha", "Pooja", "Vikram", "Farhan")
LAST = ("Sharma", "Verma", "Iyer", "Nair", "Reddy", "Patel", "Shah", "Mehta", "Gupta", "Singh",
        "Khan", "Das", "Banerjee", "Chatterjee", "Kulkarni", "Joshi", "Menon", "Pillai", "Rao", "Agarwal")
MALFORMED = ("+91 12345", "98765x4321", "0000000000", "+1 555 0100", "9" * 14, "", "+91-5123-45678",
             "phone unknown")

# 90..98 followed by 8 digits is always a valid Indian mobile number; (i*P) mod M is a bijection.
_PHONE_BASE, _PHONE_SPAN, _PHONE_STEP = 9_000_000_000, 900_000_000, 7_919

SENDING_NUMBERS = (
    # phone_number_id, display phone, shard, role
    ("100000000000001", "+918000000001", 0, "primary"),
    ("100000000000002", "+918000000002", 1, "primary"),
    ("100000000000003", "+918000000003", 2, "primary"),
    ("100000000000004", "+918000000004", 3, "primary"),
    ("100000000000005", "+918000000005", None, "hot_spare"),
)
TEMPLATES = (
    # name, language, variant_rank; body params: advisor name, pack title, disclaimer
    ("daily_pack_v1", "en", 1), ("daily_pack_v2", "en", 2),
    ("daily_pack_hi_v1", "hi", 1), ("daily_pack_hi_v2", "hi", 2),
)
TEMPLATE_BODY_PARAMS = 3
EVERGREEN_TOPICS = (
    ("Power of compounding", "Starting early lets compounding do the heavy lifting for long-term goals."),
    ("SIP discipline", "A systematic investment plan averages your cost across market cycles."),
    ("Emergency fund first", "Keep six months of expenses liquid before taking market risk."),
    ("Asset allocation", "Balance equity, debt and gold to match your risk profile and horizon."),
    ("Insurance is protection", "Buy term cover for protection; invest separately for growth."),
    ("Review annually", "Revisit your goals and portfolio once a year, not every market move."),
    ("Tax-saving with ELSS", "ELSS funds combine Section 80C benefits with a three-year lock-in."),
    ("Retirement corpus", "Estimate retirement needs with inflation in mind and start today."),
    ("Children's education", "Plan for education costs that rise faster than general inflation."),
    ("Avoid timing the market", "Time in the market usually beats timing the market."),
    ("Debt fund basics", "Debt funds carry interest-rate and credit risk; match duration to need."),
    ("Know your risk profile", "Your asset mix should reflect both your goals and your comfort with risk."),
)


# The on-call roster (issue 17): role, person, Slack channel, email. Routing keys are sandbox-style 32-character
# PagerDuty integration keys derived from the role (`oncall_routing_key`), so tests and the sandbox can predict them.
ONCALL_ROSTER = (
    ("primary", "Primary on-call", "Asha Rao", "#oncall-primary", "asha.rao@example.in"),
    ("secondary", "Secondary on-call", "Vikram Nair", "#oncall-secondary", "vikram.nair@example.in"),
    ("engineering_lead", "Engineering lead", "Kavya Iyer", "#eng-leads", "kavya.iyer@example.in"),
    ("engineering_manager", "Engineering manager", "Rohan Mehta", "#eng-management", "rohan.mehta@example.in"),
    ("head_of_product", "Head of product", "Neha Kulkarni", "#product-leads", "neha.kulkarni@example.in"),
    ("head_of_operations", "Head of operations", "Farhan Khan", "#operations", "farhan.khan@example.in"),
    ("head_of_marketing", "Head of marketing", "Priya Menon", "#marketing", "priya.menon@example.in"),
    ("compliance_officer", "Compliance officer", "Lakshmi Pillai", "#compliance", "lakshmi.pillai@example.in"),
    ("legal", "Legal", "Deepak Joshi", "#legal", "deepak.joshi@example.in"),
    ("cto", "CTO", "Suresh Reddy", "#exec-tech", "suresh.reddy@example.in"),
    ("ceo", "CEO", "Meera Shah", "#exec", "meera.shah@example.in"),
    ("board", "Board notification", "Board secretariat", "#board-notices", "board@example.in"),
)


def oncall_routing_key(role: str) -> str:
    """The demo roster's sandbox routing key of a role: 32 hex characters, stable across seeds."""
    return hashlib.md5(f"sandbox-pagerduty-{role}".encode()).hexdigest()


def seed_oncall_roster(conn) -> int:
    """Seed the on-call roster inside the caller's transaction; an operator's later edit is never overwritten.
    Returns the number of roles inserted."""
    inserted = 0
    for role, display, person, channel, email in ONCALL_ROSTER:
        inserted += conn.execute(query("incidents/seed_role"), dict(
            role=role, display_name=display, person=person, slack_channel=channel,
            pagerduty_routing_key=oncall_routing_key(role), email=email)).rowcount
    return inserted


@dataclass
class SeedResult:
    advisors_generated: int
    import_report: ImportReport
    dnc_added: int
    packs: int


def advisor_phone(index: int, seed: int) -> str:
    national = _PHONE_BASE + (index * _PHONE_STEP + seed * 104_729) % _PHONE_SPAN
    return f"+91{national}"


def generate_advisor_rows(n: int, seed: int = 42, consent_time: dt.datetime | None = None) -> list[dict]:
    """N advisor import rows; about 0.5% carry a malformed phone number. Pure and deterministic."""
    rng = random.Random(seed)
    consent_time = consent_time or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = []
    for i in range(n):
        segment = SEGMENTS[i % len(SEGMENTS)]
        malformed = rng.random() < 0.005
        opted_in = rng.random() >= 0.01
        reg = ("INA" if segment in ("equity", "wealth") else "ARN-") + f"{100000 + i:06d}"
        rows.append({
            "external_ref": f"ADV{i + 1:07d}",
            "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "phone": rng.choice(MALFORMED) if malformed else advisor_phone(i, seed),
            "segment": segment,
            "language": "hi" if rng.random() < 0.2 else "en",
            "registration_no": reg,
            "contact_email": f"advisor{i + 1}@example.in",
            "opted_in": opted_in,
            "consent_at": consent_time - dt.timedelta(days=rng.randrange(0, 300)) if opted_in else None,
            "active": rng.random() >= 0.01,
        })
    return rows


def dnc_phones(rows: list[dict], seed: int = 42) -> list[str]:
    """About 1% of the well-formed phones, chosen deterministically."""
    rng = random.Random(seed * 7 + 1)
    return [r["phone"] for r in rows if r["phone"].startswith("+91") and len(r["phone"]) == 13
            and rng.random() < 0.01]


def _pack_rows(today: dt.date, seed: int) -> list[dict]:
    rng = random.Random(seed * 13 + 5)
    approved_at = dt.datetime.combine(today - dt.timedelta(days=1), dt.time(12, 0), tzinfo=dt.UTC)
    packs = []
    for n, (title, body) in enumerate(EVERGREEN_TOPICS, start=1):
        packs.append(dict(pack_key=f"evergreen-{n:02d}", business_date=None, scope="all", segment=None,
                          advisor_id=None, title=title, body=body, disclaimer=SEBI_DISCLAIMER,
                          artwork=f"evergreen-{n % 4}", risk_level=1, status="approved",
                          approved_by="compliance@demo", approved_at=approved_at, is_evergreen_fallback=True,
                          submitted_at=approved_at))
    for day in (today, today + dt.timedelta(days=1)):
        for seg in SEGMENTS:
            packs.append(dict(pack_key=f"{day}-{seg}-daily", business_date=day, scope="segment", segment=seg,
                              advisor_id=None, title=f"Market view for {day:%d %b}",
                              body=f"Today's {seg.replace('_', ' ')} insight: markets remain volatile; "
                                   "stay invested as per your plan and review allocation with your advisor.",
                              disclaimer=SEBI_DISCLAIMER, artwork=seg, risk_level=2, status="approved",
                              approved_by="compliance@demo", approved_at=approved_at,
                              is_evergreen_fallback=False, submitted_at=approved_at))
        # A few extra packs still waiting for compliance, with mixed risk levels.
        for k in range(6):
            seg = SEGMENTS[k % len(SEGMENTS)]
            packs.append(dict(pack_key=f"{day}-{seg}-extra-{k}", business_date=day, scope="segment", segment=seg,
                              advisor_id=None, title=f"Special note {k + 1}",
                              body="Sector rotation update with a balanced view of opportunities and risks.",
                              disclaimer=SEBI_DISCLAIMER, artwork=seg, risk_level=rng.randint(1, 5),
                              status="pending", approved_by=None, approved_at=None, is_evergreen_fallback=False,
                              submitted_at=approved_at + dt.timedelta(minutes=k)))
    return packs


def seed_world(engine: Engine, advisors: int = 2000, seed: int = 42, today: dt.date | None = None) -> SeedResult:
    """Create (or confirm) the demo world. Safe to run any number of times."""
    today = today or ist_today()
    rows = generate_advisor_rows(advisors, seed)
    report = import_advisors(engine, rows, source=f"demo_world(seed={seed}, n={advisors})")
    with engine.begin() as conn:
        for pnid, phone, shard, role in SENDING_NUMBERS:
            conn.execute(query("seed/sending_number"), dict(
                phone_number_id=pnid, display_phone=phone, shard=shard, role=role, quality_rating="GREEN",
                throughput_mps=80, messaging_tier="TIER_100K"))
        for name, lang, rank in TEMPLATES:
            conn.execute(query("seed/template"), dict(name=name, language=lang, purpose="daily_pack",
                                                      variant_rank=rank, status="APPROVED",
                                                      body_param_count=TEMPLATE_BODY_PARAMS))
        dnc = dnc_phones(rows, seed)
        before = conn.execute(sa.text("SELECT count(*) FROM do_not_contact")).scalar_one()
        if dnc:
            conn.execute(query("seed/do_not_contact"),
                         [{"phone_e164": p, "reason": "customer requested no contact"} for p in dnc])
        after = conn.execute(sa.text("SELECT count(*) FROM do_not_contact")).scalar_one()
        packs = _pack_rows(today, seed)
        conn.execute(query("seed/content_pack"), packs)
        seed_oncall_roster(conn)
    log.info("demo world: %d advisors generated, %d imported, %d rejected, %d DNC added",
             advisors, report.accepted, len(report.rejected), after - before)
    return SeedResult(advisors, report, after - before, len(packs))
