"""Each run's worst severity and one-line summary, written where an operator looks first: the DAG run's note in
the Airflow UI (the grid and the run page show it), so a run that paged is not as green as a clean one.

Tasks never touch Airflow's metadata database: the note goes through Airflow's public REST API
(`PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}`, field `note`), with the `airflow_api` connection: host = the
api-server's base URL, login/password = a service user allowed to edit DAG runs. Without that connection the
note is skipped with one INFO line; the verdict still reaches Slack and `check_results`. A failing API never
fails the summary task that writes the note: the note is a view, not the record.
"""
from __future__ import annotations

import logging
from urllib.parse import quote

from include.core.alerting import RunRef, Severity

log = logging.getLogger(__name__)

NOTE_MAX = 1000  # Airflow's DAGRunPatchBody.note limit
MARKS = {Severity.P0: "🔴 P0", Severity.P1: "🟠 P1", Severity.P2: "🟡 P2", Severity.INFO: "🟢 ok"}


def note_text(severity: Severity, summary: str) -> str:
    """`🟠 P1 · Pre-delivery check for 2026-12-01: 1 check(s) need attention`, within Airflow's limit."""
    text = f"{MARKS[severity]} · {' '.join(summary.split())}"
    return text if len(text) <= NOTE_MAX else text[: NOTE_MAX - 1] + "…"


def write_run_note(source: RunRef, severity: Severity, summary: str) -> bool:
    """Set the note of `source`'s DAG run; True when Airflow accepted it."""
    if not (source.dag_id and source.run_id):
        return False
    import httpx

    from include.core.airflow_api import NotConfigured, api_session

    try:
        with api_session() as http:
            resp = http.patch(f"/api/v2/dags/{quote(source.dag_id, safe='')}/dagRuns/{quote(source.run_id, safe='')}",
                              params={"update_mask": "note"}, json={"note": note_text(severity, summary)})
            resp.raise_for_status()
    except NotConfigured as exc:
        log.info("run note not written: %s (the verdict is in Slack and check_results)", exc)
        return False
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        log.warning("run note not written for %s %s: %s", source.dag_id, source.run_id, exc)
        return False
    return True
