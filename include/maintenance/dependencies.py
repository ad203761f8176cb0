"""Dependency check: installed packages against the committed lock, and known vulnerabilities when an
advisory database is reachable.

The lock (requirements-lock.txt) is what `make run` and the image install; drift means a machine runs
something nobody tested. The vulnerability check needs an OSV-compatible advisory database
(FA_ADVISORY_DB_URL, e.g. an internal mirror of api.osv.dev/v1/querybatch). This machine is offline:
with no URL configured, or the URL unreachable, the report says the check was not performed.

The lock is read as pip reads a requirements file, with `packaging`: names are compared in their
canonical form (PEP 503: `Foo_Bar` is `foo-bar`), versions as PEP 440 versions (`1.0` is `1.0.0`),
lines whose environment marker does not apply here are left out, `name @ url` lines only need the
package installed, comments, pip options (`-r`, `--hash`, …) and continuation lines are skipped.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from include.core import config

log = logging.getLogger(__name__)

LOCK = config.PROJECT_ROOT / "requirements-lock.txt"

_COMMENT = re.compile(r"(^|\s+)#.*$")       # pip's rule: '#' starts a comment at line start or after a space
_TRAILING_OPTIONS = re.compile(r"\s+--?[A-Za-z].*$")  # per-requirement options, e.g. `--hash=sha256:…`
_NOT_TRACKED = {"pip", "setuptools", "wheel"}


class LockFileError(ValueError):
    """A line of the lock that is not a requirement; the message names the file and line."""


def parse_lock(text: str, source: str = "requirements-lock.txt") -> dict[str, Requirement]:
    """The lock's requirements that apply to this environment, by canonical name."""
    reqs: dict[str, Requirement] = {}
    where: dict[str, int] = {}
    for lineno, line in _logical_lines(text):
        line = _COMMENT.sub("", line).strip()
        if not line or line.startswith("-"):  # blank, comment or a pip option (-r, -c, --index-url, -e …)
            continue
        line = _TRAILING_OPTIONS.sub("", line)
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise LockFileError(f"{source}:{lineno}: not a valid requirement: {line!r} ({exc})") from exc
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # e.g. `pywin32==306; sys_platform == "win32"` on Linux
        name = canonicalize_name(req.name)
        if name in reqs:
            raise LockFileError(f"{source}:{lineno}: {req.name} is locked twice (first on line {where[name]})")
        reqs[name], where[name] = req, lineno
    return reqs


def _logical_lines(text: str):
    """(first line number, line) with backslash continuations joined, as pip does."""
    buf, start = "", 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not buf:
            start = lineno
        if raw.rstrip().endswith("\\") and not _COMMENT.search(raw):
            buf += raw.rstrip()[:-1] + " "
            continue
        yield start, buf + raw
        buf = ""
    if buf:
        yield start, buf


def read_lock(path: Path = LOCK) -> dict[str, Requirement]:
    return parse_lock(path.read_text(), source=path.name)


def pinned_version(req: Requirement | str) -> str | None:
    """The exact version a requirement pins (`name==1.2.3`), or None (`name @ url`, ranges, `==1.*`)."""
    if isinstance(req, str):
        return req
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and not specs[0].version.endswith(".*"):
        return specs[0].version
    return None


def satisfies(installed_version: str, req: Requirement | str) -> bool:
    """Whether an installed version is what the lock asks for, compared as PEP 440 versions."""
    if isinstance(req, str):
        req = Requirement(f"x=={req}")
    if req.url or not req.specifier:
        return True  # `name @ url` or an unversioned name: being installed is all the lock says
    try:
        Version(installed_version)
    except InvalidVersion:  # a legacy, non-PEP 440 version: only an identical pin matches
        return installed_version == pinned_version(req)
    return req.specifier.contains(installed_version, prereleases=True)


def installed() -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()
            if d.metadata["Name"]}


def drift(pins: Mapping[str, Requirement | str] | None = None, have: Mapping[str, str] | None = None) -> dict:
    """Locked packages missing or at another version, and installed packages not in the lock.

    `pins` maps names to a Requirement or an exact version string; names in `pins` and `have` may be
    spelled any way (`Foo_Bar`, `foo-bar`), they are compared canonically."""
    pins = read_lock() if pins is None else pins
    have = installed() if have is None else have
    locked = {canonicalize_name(n): r for n, r in pins.items()}
    have = {canonicalize_name(n): v for n, v in have.items()}
    missing = sorted(n for n in locked if n not in have)
    different = sorted(f"{n}: locked {_spec(locked[n])}, installed {have[n]}"
                       for n in locked if n in have and not satisfies(have[n], locked[n]))
    extra = sorted(n for n in have if n not in locked and n not in _NOT_TRACKED)
    return {"locked": len(locked), "installed": len(have), "missing": missing, "version_drift": different,
            "not_in_lock": extra, "ok": not missing and not different}


def _spec(req: Requirement | str) -> str:
    return pinned_version(req) or (f"@ {req.url}" if req.url else str(req.specifier) or "any version")


def advisories(pins: Mapping[str, Requirement | str], url: str = config.ADVISORY_DB_URL,
               timeout_s: float = 10.0) -> dict:
    if not url:
        return {"checked": False, "reason": "no advisory database configured (FA_ADVISORY_DB_URL) and this "
                                            "machine is offline: known-vulnerability check NOT performed"}
    import httpx

    versions = {canonicalize_name(n): pinned_version(r) for n, r in pins.items()}
    queries = [{"package": {"name": n, "ecosystem": "PyPI"}, "version": v} for n, v in sorted(versions.items()) if v]
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
