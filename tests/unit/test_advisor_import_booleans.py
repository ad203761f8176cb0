"""advisor_import reads booleans strictly: "false" is false, and a value that is not a boolean is a
rejected row with a reason, never a guess (`bool("false")` is True)."""
import datetime as dt

import pytest

from include.core.advisor_import import BooleanValueError, import_advisors, parse_bool
from tests.world import rows


@pytest.mark.parametrize("raw, default, expected", [
    ("true", False, True), ("TRUE", False, True), (" True ", False, True), ("yes", False, True),
    ("YES", False, True), ("y", False, True), ("Y", False, True), ("1", False, True),
    ("false", True, False), ("FALSE", True, False), (" False", True, False), ("no", True, False),
    ("No", True, False), ("n", True, False), ("N", True, False), ("0", True, False),
    (True, False, True), (False, True, False), (1, False, True), (0, True, False),
    (None, False, False), (None, True, True), ("", True, True), ("  ", False, False),
])
def test_parse_bool_accepts_only_the_documented_spellings(raw, default, expected):
    assert parse_bool(raw, "opted_in", default) is expected


@pytest.mark.parametrize("raw", ["maybe", "t", "f", "on", "off", "2", "-1", "1.0", "truee", "nope", "ja", 2, 1.0])
def test_parse_bool_rejects_anything_else_with_the_field_and_value(raw):
    with pytest.raises(BooleanValueError, match=r"opted_in .* is not a boolean \(expected true/false"):
        parse_bool(raw, "opted_in", False)


def _row(i: int, **over) -> dict:
    row = {"external_ref": f"IMP{i:04d}", "name": f"Advisor {i}", "phone": f"+91981234{i:04d}",
           "segment": "equity", "registration_no": f"INA{100000 + i}", "contact_email": f"a{i}@example.in",
           "consent_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
    row.update(over)
    return row


# (opted_in, active) as they arrive in the file -> what is stored, or the rejection reason.
CASES = [
    (("false", "true"), (False, True)),
    (("FALSE", "no"), (False, False)),
    (("no", "N"), (False, False)),
    (("0", "1"), (False, True)),
    (("n", "y"), (False, True)),
    (("true", "false"), (True, False)),
    (("Yes", "0"), (True, False)),
    (("1", ""), (True, True)),            # an empty cell is the column's default (active)
    (("", "yes"), (False, True)),          # ... and opted_in defaults to false
    (("maybe", "true"), "opted_in 'maybe' is not a boolean"),
    (("true", "inactive"), "active 'inactive' is not a boolean"),
]


def test_import_stores_false_as_false_and_rejects_non_booleans_by_row(app_db):
    data = [_row(i, opted_in=o, active=a) for i, ((o, a), _) in enumerate(CASES, start=1)]
    report = import_advisors(app_db, data, source="test")
    stored = {r.external_ref: (r.opted_in, r.active)
              for r in rows(app_db, "SELECT external_ref, opted_in, active FROM advisors")}
    rejected = {r.row_number: r for r in report.rejected}
    for i, (_, want) in enumerate(CASES, start=1):
        ref = f"IMP{i:04d}"
        if isinstance(want, tuple):
            assert stored.get(ref) == want, (i, CASES[i - 1])
        else:
            assert ref not in stored, (i, CASES[i - 1])
            assert rejected[i].external_ref == ref and want in rejected[i].reason
    assert report.accepted == sum(isinstance(w, tuple) for _, w in CASES)
    # The rejections name the row and the reason, in the report and in import_rejections.
    lines = "\n".join(report.lines())
    assert "row 10 (IMP0010): opted_in 'maybe' is not a boolean" in lines
    assert "row 11 (IMP0011): active 'inactive' is not a boolean" in lines
    recorded = rows(app_db, "SELECT row_number, raw_value, reason FROM import_rejections ORDER BY row_number")
    assert [(r.row_number, r.raw_value) for r in recorded] == [(10, "maybe"), (11, "inactive")]
