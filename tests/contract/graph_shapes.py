"""Compare the JSON the sandbox serves with a fixture written from Meta's documentation.

A fixture is the response body as Meta documents it, plus metadata keys that start with "_" (stripped before the
comparison):
  _source       the page(s) or public reference payload(s) the body was written from (required)
  _notes        how the fixture was derived (e.g. which parts of a documented example the sandbox does not model)
  _http_status  the HTTP status expected with the body
  _by_type      keys whose values are instance data (names, texts): compared by type only

The comparison: the same keys at every level, the same value types, equal values — except for volatile values
(ids, fbtrace_id, timestamps, URLs, cursors, hashes: VOLATILE_KEYS) and the fixture's `_by_type` keys, which are
compared by type (a list under such a key only by being a list). Other lists must have the same length and are
compared element by element.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
VOLATILE_KEYS = frozenset({"id", "fbtrace_id", "timestamp", "date", "url", "sha256", "file_size", "before", "after",
                           "next", "previous"})


def load(name: str) -> dict:
    data = json.loads((FIXTURES / name).read_text())
    sources = data.get("_source")
    sources = [sources] if isinstance(sources, str) else sources
    assert sources and all(isinstance(s, str) and s.startswith("https://") for s in sources), \
        f"{name}: every fixture names its source(s) in _source"
    return data


def body_of(fixture: dict) -> Any:
    """The documented body: the fixture without its metadata keys (a non-object body sits under `_body`)."""
    if "_body" in fixture:
        return fixture["_body"]
    return {k: v for k, v in fixture.items() if not k.startswith("_")}


def assert_same_shape(actual: Any, fixture: dict) -> None:
    by_type = frozenset(fixture.get("_by_type", ()))
    problems: list[str] = []
    _compare(actual, body_of(fixture), "$", VOLATILE_KEYS | by_type, problems)
    assert not problems, "sandbox response differs from the fixture:\n  " + "\n  ".join(problems) + \
        f"\nactual: {json.dumps(actual, indent=1)[:3000]}"


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _compare(actual: Any, expected: Any, path: str, loose: frozenset[str], problems: list[str],
             by_type: bool = False) -> None:
    if _kind(actual) != _kind(expected):
        problems.append(f"{path}: type {_kind(actual)} != {_kind(expected)} (got {actual!r:.80})")
        return
    if by_type and isinstance(expected, list):
        return  # instance data (e.g. example texts): a list, whatever its length
    if isinstance(expected, dict):
        missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
        if missing:
            problems.append(f"{path}: missing key(s) {missing}")
        if extra:
            problems.append(f"{path}: unexpected key(s) {extra}")
        for key in set(expected) & set(actual):
            _compare(actual[key], expected[key], f"{path}.{key}", loose, problems, by_type or key in loose)
    elif isinstance(expected, list):
        if len(actual) != len(expected):
            problems.append(f"{path}: {len(actual)} item(s), fixture has {len(expected)}")
        for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
            _compare(a, e, f"{path}[{i}]", loose, problems, by_type)
    elif not by_type and actual != expected:
        problems.append(f"{path}: {actual!r:.120} != {expected!r:.120}")
