"""The note text: the worst severity first, one line, within Airflow's 1,000-character limit."""
import pytest

from include.core.alerting import RunRef, Severity
from include.core.run_notes import NOTE_MAX, note_text, write_run_note


@pytest.mark.parametrize("severity, summary, expected", [
    (Severity.INFO, "Pre-delivery check for 2026-12-01: all checks passed",
     "🟢 ok · Pre-delivery check for 2026-12-01: all checks passed"),
    (Severity.P0, "Delivery fan-out for 2026-12-01:\n 97.10% accepted", "🔴 P0 · Delivery fan-out for 2026-12-01: 97.10% accepted"),
    (Severity.P1, "x", "🟠 P1 · x"),
    (Severity.P2, "  spaced   out  ", "🟡 P2 · spaced out"),
])
def test_note_text(severity, summary, expected):
    assert note_text(severity, summary) == expected


def test_a_long_summary_is_cut_to_airflows_limit():
    text = note_text(Severity.P1, "y" * 5000)
    assert len(text) == NOTE_MAX and text.endswith("…")


def test_no_run_means_no_note():
    assert write_run_note(RunRef(), Severity.P0, "anything") is False
