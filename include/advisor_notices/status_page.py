"""The delivery status page, written every run of advisor_delay_notices under the data root (include/core/storage.py):

* `status/status.json` + `status/status.html` — internal: the open incidents (worst first), the late segments, the
  ETA and its basis, the kill switch, per-segment figures and the day's notices.
* `status/advisor_status.json` + `status/advisor_status.html` — advisor-facing: "all normal", or which segments are
  delayed and the same ETA sentence the notices carry. No incident ids, counts, kill switch or other internals.

`build` is plain (engine, date, now); `write` puts the four files where the data root is (file:// locally,
s3:// etc. in production).
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy.engine import Engine

from include.core import config
from include.core.db import query
from include.advisor_notices import delays
from include.advisor_notices.outbox import environment, situation

STATUS_FILES = ("status.json", "status.html", "advisor_status.json", "advisor_status.html")
# What the advisor-facing JSON may carry; anything else would be an internal leaking out.
ADVISOR_KEYS = ("business_date", "updated_at", "state", "delayed_segments", "message", "eta_at", "next_update_at")


def _ist(value: dt.datetime | None) -> str | None:
    return value.astimezone(config.IST).isoformat(timespec="seconds") if value else None


def build(engine: Engine, business_date: dt.date, now: dt.datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """(internal, advisor-facing) status documents."""
    with engine.connect() as conn:
        sit = situation(conn, business_date, now)
        notices = dict(conn.execute(query("notices/day_summary"), {"business_date": business_date}).one()._mapping)
    notices["last_notice_at"] = _ist(notices["last_notice_at"])
    late_codes = {s.segment for s in sit.late}
    state = "delayed" if sit.late else "normal"
    eta = {"basis": sit.eta.basis, "eta_at": _ist(sit.eta.eta_at), "next_update_at": _ist(sit.eta.next_update_at),
           "text": sit.eta.phrase()} if sit.late else None
    slot = delays.delivery_slot(business_date)
    internal = {
        "business_date": business_date.isoformat(),
        "as_of": _ist(now),
        "slot": slot.strftime("%H:%M"),
        "minutes_since_slot": int(delays.minutes_late(now, business_date)),
        "state": state,
        "late_segments": [{"segment": s.segment, "name": sit.segment_names.get(s.segment, s.segment),
                           "unsent": s.unsent} for s in sit.late],
        "eta": eta,
        "remaining": sit.remaining,
        "accepted_in_window": sit.accepted_in_window,
        "rate_window_s": config.ADVISOR_NOTICE_RATE_WINDOW_S,
        "sending_paused": sit.sending_paused,
        "incidents": [{"incident_id": i["incident_id"], "severity": i["severity"], "category": i["category"],
                       "trigger": i["trigger"], "opened_at": _ist(i["opened_at"]),
                       "acknowledged_by": i["acknowledged_by"]} for i in sit.incidents],
        "segments": [{**s.__dict__, "late": s.segment in late_codes} for s in sit.segments],
        "notices": notices,
    }
    advisor = {
        "business_date": business_date.isoformat(),
        "updated_at": _ist(now),
        "state": state,
        "delayed_segments": [{"name": sit.segment_names.get(s.segment, s.segment)} for s in sit.late],
        "message": sit.eta.phrase() if sit.late else "All normal: packs are being delivered as usual.",
        "eta_at": eta["eta_at"] if eta else None,
        "next_update_at": eta["next_update_at"] if eta else None,
    }
    if tuple(advisor) != ADVISOR_KEYS:
        raise RuntimeError(f"advisor status carries {sorted(advisor)}, only {ADVISOR_KEYS} are allowed")
    return internal, advisor


def render(internal: dict[str, Any], advisor: dict[str, Any]) -> dict[str, str]:
    """The four files' contents."""
    env = environment()
    return {
        "status.json": json.dumps(internal, indent=2, default=str),
        "status.html": env.get_template("status.html.j2").render(s=internal),
        "advisor_status.json": json.dumps(advisor, indent=2, default=str),
        "advisor_status.html": env.get_template("advisor_status.html.j2").render(a=advisor),
    }


def write(files: dict[str, str]) -> dict[str, str]:
    """Write the files under <data root>/status/ (overwritten every run); returns their URIs."""
    from include.core.storage import data_root

    unknown = sorted(set(files) - set(STATUS_FILES))
    if unknown:
        raise ValueError(f"not status files (see STATUS_FILES): {unknown}")
    folder = data_root() / "status"
    folder.mkdir(parents=True, exist_ok=True)
    uris = {}
    for name, content in files.items():
        path = folder / name
        path.write_text(content, encoding="utf-8")
        uris[name] = str(path)
    return uris


def publish(engine: Engine, business_date: dt.date, now: dt.datetime) -> dict[str, Any]:
    internal, advisor = build(engine, business_date, now)
    uris = write(render(internal, advisor))
    return {"state": internal["state"], "late_segments": [s["segment"] for s in internal["late_segments"]],
            "incidents": [i["incident_id"] for i in internal["incidents"]], "files": uris}
