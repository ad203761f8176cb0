"""Dependency check: installed packages against the committed lock, and known vulnerabilities when an
advisory database is reachable.

The lock (requirements-lock.txt) is what `make run` and the image install; drift means a machine runs
something nobody tested. The vulnerability check needs an OSV-compatible advisory database
(FA_ADVISORY_DB_URL, e.g. an internal mirror of api.osv.dev/v1/querybatch). This machine is offline:
with no URL configured, or the URL unreachable, the report says the check was not performed.
"""
from __future__ import annotations

import logging
import re
from importlib import metadata
from pathlib import Path

from include.core import config

log = logging.getLogger(__name__)

LOCK = Path(__file__).resolve().parents[2] / "requirements-lock.txt"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path = LOCK) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^;\s]+)", line)
        if m:
            pins[_norm(m.group(1))] = m.group(2)
    return pins


def installed() -> dict[str, str]:
    return {_norm(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def drift(pins: dict[str, str] | None = None, have: dict[str, str] | None = None) -> dict:
    pins = read_lock() if pins is None else pins
    have = installed() if have is None else have
    missing = sorted(n for n in pins if n not in have)
    different = sorted(f"{n}: locked {pins[n]}, installed {have[n]}" for n in pins if n in have and have[n] != pins[n])
    extra = sorted(n for n in have if n not in pins and n not in ("pip", "setuptools", "wheel"))
    return {"locked": len(pins), "installed": len(have), "missing": missing, "version_drift": different,
            "not_in_lock": extra, "ok": not missing and not different}


def advisories(pins: dict[str, str], url: str = config.ADVISORY_DB_URL, timeout_s: float = 10.0) -> dict:
    if not url:
        return {"checked": False, "reason": "no advisory database configured (FA_ADVISORY_DB_URL) and this "
                                            "machine is offline: known-vulnerability check NOT performed"}
    import httpx

    queries = [{"package": {"name": n, "ecosystem": "PyPI"}, "version": v} for n, v in sorted(pins.items())]
    try:
        resp = httpx.post(url, json={"queries": queries}, timeout=timeout_s)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        return {"checked": False, "reason": f"advisory database {url} not reachable ({exc}): check NOT performed"}
    results = resp.json().get("results") or []
    hits = {}
    for q, r in zip(queries, results, strict=False):
        ids = [v.get("id") for v in (r or {}).get("vulns") or []]
        if ids:
            hits[f"{q['package']['name']}=={q['version']}"] = ids
    return {"checked": True, "source": url, "vulnerable": hits}


def check() -> dict:
    pins = read_lock()
    out = {"drift": drift(pins), "advisories": advisories(pins)}
    log.info("dependency check: drift ok=%s, advisories checked=%s", out["drift"]["ok"], out["advisories"]["checked"])
    return out
