"""The escalation ladders (include/incidents/escalation.py): pure, table-driven, time injected."""
import datetime as dt

import pytest

from include.incidents.escalation import (
    IncidentView,
    cto_after,
    due_escalations,
    impact_levels,
    ladder,
    postmortem_due,
    secondary_after,
    worse,
)

# The runbook's defaults (FA_ESCALATE_* unset in the tests).
SECONDARY_AFTER, CTO_AFTER = secondary_after(), cto_after()

T0 = dt.datetime(2026, 12, 1, 0, 40, tzinfo=dt.UTC)  # 06:10 IST
S = dt.timedelta(seconds=1)
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)


def incident(severity="P0", category="operational", impact=None, acked=None, resolved=None, since=None):
    impact = dict(impact or {})
    if since:
        impact["since"] = {k: (T0 + v).isoformat() for k, v in since.items()}
    return IncidentView(1, severity, category, T0, None if acked is None else T0 + acked,
                        None if resolved is None else T0 + resolved, impact)


def steps(inc, at, paged=()):
    return {(p.role, p.step) for p in due_escalations(inc, T0 + at, set(paged))}


def roles(inc, at, paged=()):
    return sorted(r for r, _ in steps(inc, at, paged))


# -- the time ladder -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("at, expected", [
    (dt.timedelta(0), ["primary"]),
    (SECONDARY_AFTER - S, ["primary"]),
    (SECONDARY_AFTER, ["primary", "secondary"]),
    (30 * M - S, ["primary", "secondary"]),
    (30 * M, ["engineering_manager", "primary", "secondary"]),
    (CTO_AFTER - S, ["engineering_manager", "primary", "secondary"]),
    (CTO_AFTER, ["cto", "engineering_manager", "primary", "secondary"]),
    (10 * H, ["cto", "engineering_manager", "primary", "secondary"]),
])
def test_time_ladder_of_an_unacknowledged_p0(at, expected):
    assert roles(incident("P0"), at) == expected


@pytest.mark.parametrize("severity, at, expected", [
    ("P1", 10 * H, ["primary", "secondary"]),   # a P1 does not wake the management chain
    ("P1", SECONDARY_AFTER - S, ["primary"]),
    ("P2", 10 * H, []),                          # no time ladder for P2
])
def test_time_ladder_by_severity(severity, at, expected):
    assert roles(incident(severity), at) == expected


def test_before_opening_nothing_is_due():
    assert roles(incident("P0"), -S) == []


@pytest.mark.parametrize("acked, at, expected", [
    (2 * M, 10 * H, []),                            # acknowledged: nothing more on the time ladder
    (2 * M, 2 * M - S, ["primary"]),                # just before the acknowledgement
    (45 * M, 10 * H, []),
    (45 * M, 45 * M - S, ["engineering_manager", "primary", "secondary"]),
    (45 * M, 20 * M, ["primary", "secondary"]),     # an acknowledgement in the future has not happened yet
])
def test_acknowledgement_stops_the_time_ladder(acked, at, expected):
    assert roles(incident("P0", acked=acked), at) == expected


# -- the impact ladders --------------------------------------------------------------------------------------------
RATE_93 = {"delivery_rate": 0.93}
RATE_88 = {"delivery_rate": 0.88}


@pytest.mark.parametrize("impact, at, expected", [
    (RATE_93, dt.timedelta(0), ["engineering_manager"]),
    (RATE_93, H - S, ["engineering_manager"]),
    (RATE_93, H, ["engineering_manager", "head_of_product"]),
    (RATE_93, 4 * H - S, ["engineering_manager", "head_of_product"]),
    (RATE_93, 4 * H, ["cto", "engineering_manager", "head_of_product"]),
    (RATE_88, dt.timedelta(0), ["cto", "engineering_manager"]),
    (RATE_88, 30 * M - S, ["cto", "engineering_manager"]),
    (RATE_88, 30 * M, ["ceo", "cto", "engineering_manager"]),
    (RATE_88, H - S, ["ceo", "cto", "engineering_manager"]),
    (RATE_88, H, ["board", "ceo", "cto", "engineering_manager", "head_of_product"]),
    ({"delivery_rate": 0.95}, 10 * H, []),       # exactly 95% is not below 95%
    ({"delivery_rate": 0.90}, 0 * H, ["engineering_manager"]),  # exactly 90%: below 95 only
])
def test_delivery_rate_ladders(impact, at, expected):
    got = [r for r, s in sorted(steps(incident("P2", "delivery_rate", impact), at))]
    assert sorted(set(got)) == expected


def test_rate_below_90_reached_later_starts_its_own_clock():
    inc = incident("P2", "delivery_rate", RATE_88, since={"rate<95": 0 * H, "rate<90": 2 * H})
    assert ("cto", "rate<90:cto") not in steps(inc, 2 * H - S)
    assert ("cto", "rate<90:cto") in steps(inc, 2 * H)
    assert ("ceo", "rate<90:ceo") not in steps(inc, 2 * H + 30 * M - S)
    assert ("ceo", "rate<90:ceo") in steps(inc, 2 * H + 30 * M)


@pytest.mark.parametrize("category, impact, at, expected", [
    ("compliance", {}, dt.timedelta(0), ["compliance_officer", "legal"]),
    ("compliance", {}, 15 * M - S, ["compliance_officer", "legal"]),
    ("compliance", {}, 15 * M, ["ceo", "compliance_officer", "legal"]),
    ("quality", {"quality_rating": "MEDIUM"}, dt.timedelta(0), ["head_of_operations"]),
    ("quality", {"quality_rating": "YELLOW"}, 2 * H - S, ["head_of_operations"]),
    ("quality", {"quality_rating": "YELLOW"}, 2 * H, ["cto", "head_of_marketing", "head_of_operations"]),
    ("quality", {"quality_rating": "GREEN"}, 10 * H, []),
    ("account_suspension", {}, dt.timedelta(0), ["ceo", "cto"]),
])
def test_business_impact_matrix(category, impact, at, expected):
    assert roles(incident("P2", category, impact), at) == expected


def test_acknowledgement_does_not_stop_the_impact_ladder():
    inc = incident("P0", "delivery_rate", RATE_88, acked=1 * M)
    got = steps(inc, 4 * H)
    assert {r for r, s in got if s.startswith("time:")} == set()
    assert {("ceo", "rate<90:ceo"), ("board", "rate<90:board"), ("cto", "rate<95:cto"),
            ("head_of_product", "rate<95:head_of_product")} <= got


@pytest.mark.parametrize("resolved, at", [(0 * H, 0 * H), (10 * M, 5 * H), (2 * H, 2 * H)])
def test_resolution_stops_every_ladder(resolved, at):
    assert steps(incident("P0", "delivery_rate", RATE_88, resolved=resolved), at) == set()


def test_resolution_in_the_future_has_not_happened_yet():
    assert steps(incident("P0", resolved=2 * H), 0 * H) == {("primary", "time:primary")}


def test_already_paged_steps_are_not_repeated_and_steps_are_stable():
    inc = incident("P0", "delivery_rate", RATE_88)
    first = steps(inc, 0 * H)
    assert first == {("primary", "time:primary"), ("engineering_manager", "rate<95:engineering_manager"),
                     ("cto", "rate<90:cto")}
    assert steps(inc, 0 * H, paged=first) == set()
    later = steps(inc, 10 * M, paged=first)
    assert later == {("secondary", "time:secondary")}
    # the same role on two ladders is two steps (one PagerDuty alert per role through the dedup key)
    assert ("cto", "time:cto") in steps(inc, H, paged=first)


@pytest.mark.parametrize("a, b, expected", [("P1", "P0", "P0"), ("P0", "P1", "P0"), ("P2", "P1", "P1"),
                                            ("P2", "P2", "P2")])
def test_severity_joins_only_get_worse(a, b, expected):
    assert worse(a, b) == expected


def test_a_join_to_p0_brings_the_full_time_ladder():
    assert roles(incident("P1"), 2 * H) == ["primary", "secondary"]
    assert roles(incident(worse("P1", "P0")), 2 * H) == ["cto", "engineering_manager", "primary", "secondary"]


@pytest.mark.parametrize("category, impact, levels", [
    ("delivery_rate", {"delivery_rate": 0.99}, []),
    ("delivery_rate", {"delivery_rate": 0.94}, ["rate<95"]),
    ("sla", {"delivery_rate": 0.5}, ["rate<95", "rate<90"]),
    ("quality", {"quality_rating": "red"}, ["quality"]),
    ("compliance", {"delivery_rate": True}, ["compliance"]),  # a bool is not a rate
    ("operational", {}, []),
])
def test_impact_levels(category, impact, levels):
    assert impact_levels(category, impact) == levels


@pytest.mark.parametrize("severity, category, hours", [
    ("P0", "delivery_rate", 24), ("P0", "sla", 24), ("P0", "operational", 24), ("P0", "quality", 24),
    ("P0", "compliance", 48), ("P0", "security", 48), ("P0", "account_suspension", 48),
    ("P1", "compliance", None), ("P2", "delivery_rate", None),
])
def test_postmortem_due(severity, category, hours):
    due = postmortem_due(severity, category, T0)
    assert due == (None if hours is None else T0 + hours * H)


def test_every_page_names_a_reason_and_a_due_time():
    for page in ladder(incident("P0", "compliance", {"delivery_rate": 0.5, "quality_rating": "LOW"})):
        assert page.reason and page.due_at >= T0 and ":" in page.step


def test_the_ladder_follows_its_settings_when_they_change(monkeypatch):
    monkeypatch.setenv("FA_ESCALATE_SECONDARY_AFTER_MIN", "2")
    monkeypatch.setenv("FA_POSTMORTEM_DUE_H", "12")
    incident = IncidentView(1, "P0", "operational", T0, None, None, {}, "operational:2026-12-01", "x")
    assert [p.role for p in due_escalations(incident, T0 + 2 * M, set())] == ["primary", "secondary"]
    assert postmortem_due("P0", "operational", T0) == T0 + 12 * H
