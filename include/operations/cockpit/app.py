"""The cockpit's FastAPI app: one server-rendered page, its JSON snapshot, the kill switch, the report's files.

Routes (relative to where the api-server mounts the app, /cockpit):
  GET  /                                   the page (Jinja2, autoescaped); ?date=YYYY-MM-DD, default today in IST
  GET  /api/snapshot?date=                 everything the page shows (data.snapshot), polled every few seconds
  POST /api/sending/pause | /resume        {"reason": "..."}: the kill switch through the ops DAGs' audited code
  GET  /reports/{business_date}/{filename} the 06:30 report's own files, read from object storage

Authentication and authorisation are injected (`viewer`, `operator_for`) so the app carries no Airflow import:
plugins/delivery_cockpit.py passes the api-server's own dependencies (every route: a logged-in Airflow user;
pause/resume: a user Airflow's auth manager allows to trigger ops_pause_sending / ops_resume_sending).
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from include.core import config
from include.operations.cockpit import data
from include.reporting.daily_report import REPORT_FILES

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
MOUNT_PREFIX = "/cockpit"
POLL_SECONDS = 3
ACTION_HEADER = "X-Cockpit-Action"  # a custom header: a cross-site form cannot send it without a CORS preflight
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DateParam = Annotated[str | None, Query()]
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class ReasonBody(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


def parse_business_date(value: str | None) -> dt.date:
    from include.core.dates import ist_today

    if value in (None, ""):
        return ist_today()
    if not _DATE.match(value):
        raise HTTPException(422, "date must be YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, "date must be a real calendar date (YYYY-MM-DD)") from None


def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                       autoescape=select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True))


def airflow_links(ui_base: str, day: dt.date, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Links into the Airflow UI: each morning DAG's runs of the day (run_after within the IST day), each run."""
    start = dt.datetime.combine(day, dt.time(), config.IST)
    window = {"run_after_gte": start.astimezone(dt.UTC).isoformat(),
              "run_after_lte": (start + dt.timedelta(days=1)).astimezone(dt.UTC).isoformat()}
    dag_ids = list(dict.fromkeys([*data.MORNING_DAGS, *(r["dag_id"] for r in runs)]))
    return {
        "dags": [{"dag_id": d, "href": f"{ui_base}/dags/{quote(d)}/runs?{urlencode(window)}"} for d in dag_ids],
        "runs": {f"{r['dag_id']}/{r['run_id']}":
                 f"{ui_base}/dags/{quote(r['dag_id'])}/runs/{quote(r['run_id'], safe='')}"
                 for r in runs if r.get("run_id")},
    }


def create_app(*, viewer: Callable[..., Any], operator_for: Callable[[str], Callable[..., Any]],
               engine_factory: Callable[[], Engine] | None = None, report_root: Callable[[], Any] | None = None,
               mount_prefix: str = MOUNT_PREFIX) -> FastAPI:
    """`viewer`: a FastAPI dependency returning the logged-in user's name (raises 401/403 otherwise).
    `operator_for(action)`: a dependency that raises 403 unless the user may pause ("pause") or resume ("resume").
    `report_root()`: the folder (ObjectStoragePath or pathlib.Path) holding reports/<date>/<file>."""
    if engine_factory is None:
        from include.core.db import get_engine

        engine_factory = get_engine
    if report_root is None:
        from include.core.storage import data_root

        report_root = data_root
    env = environment()
    app = FastAPI(title="Delivery cockpit", docs_url=None, redoc_url=None, openapi_url=None)

    def ui_base(request: Request) -> str:
        root = request.scope.get("root_path", "") or ""
        return root[: -len(mount_prefix)] if root.endswith(mount_prefix) else root

    def snapshot_for(request: Request, day: dt.date) -> dict[str, Any]:
        snap = data.snapshot(engine_factory(), day)
        base = ui_base(request)
        snap["links"] = airflow_links(base, day, snap["runs"])
        folder = report_root() / "reports" / day.isoformat()
        snap["report"] = {"href": f"{base}{mount_prefix}/reports/{day.isoformat()}/daily-report.html",
                          "csv_href": f"{base}{mount_prefix}/reports/{day.isoformat()}/outcomes.csv",
                          "exists": _exists(folder / "daily-report.html")}
        return snap

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, user: str = Depends(viewer), date: DateParam = None) -> HTMLResponse:
        day = parse_business_date(date)
        snap = snapshot_for(request, day)
        html = env.get_template("cockpit.html.j2").render(
            snap=snap, user=user, poll_seconds=POLL_SECONDS, action_header=ACTION_HEADER,
            api_base=f"{ui_base(request)}{mount_prefix}")
        return HTMLResponse(html, headers=_NO_STORE)

    @app.get("/api/snapshot")
    def api_snapshot(request: Request, user: str = Depends(viewer), date: DateParam = None) -> JSONResponse:
        return JSONResponse(snapshot_for(request, parse_business_date(date)), headers=_NO_STORE)

    def _flip(request: Request, paused: bool, body: ReasonBody, actor: str) -> dict[str, Any]:
        from include.delivery.kill_switch import flip_sending

        if request.headers.get(ACTION_HEADER) != "1":
            raise HTTPException(400, f"missing {ACTION_HEADER} header")
        try:
            state, announced = flip_sending(engine_factory(), paused, body.reason, actor)
        except ValueError as exc:  # an empty reason: nothing changed
            raise HTTPException(422, str(exc)) from None
        log.warning("cockpit: %s sending (%s)", "PAUSED" if paused else "resumed", state.describe())
        return {"paused": state.paused, "was_paused": state.was_paused, "changed_by": state.changed_by,
                "reason": state.reason, "changed_at": state.changed_at_ist, "announced": announced}

    @app.post("/api/sending/pause", dependencies=[Depends(operator_for("pause"))])
    def pause(request: Request, body: ReasonBody, user: str = Depends(viewer)) -> dict[str, Any]:
        return _flip(request, True, body, user)

    @app.post("/api/sending/resume", dependencies=[Depends(operator_for("resume"))])
    def resume(request: Request, body: ReasonBody, user: str = Depends(viewer)) -> dict[str, Any]:
        return _flip(request, False, body, user)

    @app.get("/reports/{business_date}/{filename}")
    def report_file(business_date: str, filename: str, user: str = Depends(viewer)) -> Response:
        media_type = REPORT_FILES.get(filename)
        if media_type is None or not _DATE.match(business_date):  # only the report's own files, by exact name
            raise HTTPException(404, "no such report file")
        day = parse_business_date(business_date)
        path = report_root() / "reports" / day.isoformat() / filename
        if not _exists(path):
            raise HTTPException(404, f"no {filename} for {day.isoformat()} yet (written by the 06:30 report task)")
        headers = dict(_NO_STORE)
        if filename != "daily-report.html":
            headers["Content-Disposition"] = f'attachment; filename="{day.isoformat()}-{filename}"'
        return Response(path.read_bytes(), media_type=media_type, headers=headers)

    return app


def _exists(path: Any) -> bool:
    try:
        return bool(path.exists())
    except OSError:
        log.exception("cannot reach %s", path)
        return False
