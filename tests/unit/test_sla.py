"""The SLA ratio, one rule for the fan-out's check and the 06:05 checkpoint."""
import pytest

from include.delivery.sla import SlaMeasure, accepted_ratio


@pytest.mark.parametrize("accepted, planned, skipped, expected", [
    (990, 1000, 0, 0.99),        # exactly the target
    (989, 1000, 0, 0.989),
    (980, 1000, 10, 0.98989898989899),   # DNC/opted-out advisors leave the denominator
    (0, 0, 0, 1.0),              # nothing planned: nothing missed
    (0, 5, 5, 1.0),              # everyone skipped at send time: nothing was sendable
    (0, 5, 7, 1.0),              # more skipped than planned (a re-plan) never goes negative
    (3, 3, 0, 1.0),
    (0, 10, 0, 0.0),
])
def test_accepted_ratio(accepted, planned, skipped, expected):
    assert accepted_ratio(accepted, planned, skipped) == pytest.approx(expected)


@pytest.mark.parametrize("ratio, met", [(0.99, True), (0.9899, False), (1.0, True), (0.0, False)])
def test_met_at_or_above_the_target(ratio, met):
    m = SlaMeasure(ratio, 0.99, 300, {})
    assert m.met is met
    assert "within 5 min (target 99%)" in m.miss()
