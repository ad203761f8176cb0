"""The daily delivery report: an HTML page with charts (inline SVG, no plotting library needed), a CSV
of outcomes and the data-quality validation, all written through ObjectStoragePath under
reports/<business date>/ in the project's data root (file:// by default, s3:// etc. by configuration).

Charts: the delivery funnel, the per-minute send rate against the numbers' limit, the latency
histogram, failures by reason, and a 14-day trend.

The markup lives in Jinja2 templates next to this module (templates/daily_report.html.j2 for the page,
templates/charts.html.j2 for the chart macros), autoescaped: anyone can edit the page without touching
Python. This module only prepares the data and the charts' geometry (SVG coordinates).
"""
from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from include.core import config

W, H, PAD = 640, 240, 40
TEMPLATES = Path(__file__).resolve().parent / "templates"

SERIES_COLOURS = ["#2f6fb0", "#2a9d55", "#c2410c", "#7c3aed", "#6b7280"]
# One dash pattern per series ("" = solid), so series that overlap stay distinguishable in print and for
# colour-blind readers; the first (solid, wider) is drawn underneath the others.
SERIES_DASHES = ["", "7 4", "2 3", "10 3 2 3", "1 4"]
LIMIT_COLOUR = "#dc2626"


@cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, autoescape=select_autoescape(enabled_extensions=("html", "j2"),
                                                                       default_for_string=True, default=True))
    env.filters["num"] = lambda v: f"{v:,}"
    env.filters["rate"] = _rate
    return env


def _rate(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2%}"


# -- chart geometry ----------------------------------------------------------------------------------------
@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    centre: float
    label: str
    short_label: str
    value: str


@dataclass
class BarChart:
    title: str
    colour: str
    bars: list[Bar]
    width: int = W
    height: int = H
    label_y: float = H - PAD + 14


@dataclass
class Tick:
    at: float
    label: str


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]
    colour: str
    dash: str
    stroke_width: float
    legend_x: float

    @property
    def polyline(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.points)


@dataclass
class LimitLine:
    y: float
    label: str


@dataclass
class LineChart:
    title: str
    series: list[Series]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    limit: LimitLine | None = None
    note: str | None = None
    width: int = W
    height: int = H
    left: float = PAD
    right: float = W - PAD
    baseline: float = H - PAD
    x_label_y: float = H - PAD + 18  # clear of the y axis' 0
    legend_y: float = 12
    limit_colour: str = LIMIT_COLOUR
    has_data: bool = field(default=True)


def nice_ceiling(value: float) -> float:
    """The smallest 'round' number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k) at or above `value`; 1 for ≤ 0."""
    if not value > 0 or math.isinf(value):
        return 1.0
    scale = 10 ** math.floor(math.log10(value))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= m * scale * (1 + 1e-9):
            return float(f"{m * scale:.12g}")  # 0.3, not 0.30000000000000004
    return 10 * scale


def _axis_label(v: float, top: float) -> str:
    return f"{v:,.0f}" if top >= 10 else f"{v:,.2f}".rstrip("0").rstrip(".")


def bar_geometry(title: str, items: list[tuple[str, float]], colour: str = "#2f6fb0",
                 fmt: str = "{:,.0f}") -> BarChart:
    top = max((v for _, v in items), default=0) or 1
    bw = (W - 2 * PAD) / max(1, len(items))
    bars = []
    for i, (label, v) in enumerate(items):
        h = (H - 2 * PAD) * v / top
        x = PAD + i * bw
        bars.append(Bar(x=x + 4, y=H - PAD - h, width=bw - 8, height=h, centre=x + bw / 2, label=label,
                        short_label=label[:14], value=fmt.format(v)))
    return BarChart(title=title, colour=colour, bars=bars)


def line_geometry(title: str, x_labels: list[str], series: dict[str, list[float]], limit: float | None = None,
                  limit_label: str = "") -> LineChart:
    """The y axis runs from 0 to a round number just above the data (not the limit): a limit far above
    the data would flatten it. The limit is drawn as a line when it falls within that range, otherwise
    a note says how far the peak is from it."""
    if not x_labels:
        return LineChart(title=title, series=[], x_ticks=[], y_ticks=[], has_data=False)
    peak = max((max(v) for v in series.values() if v), default=0.0)
    top = nice_ceiling(peak * 1.05)  # a little headroom: the peak is not drawn on the frame
    n = max(1, len(x_labels) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return PAD + (W - 2 * PAD) * i / n, H - PAD - (H - 2 * PAD) * v / top

    lines, legend_x = [], float(PAD)
    for k, (name, values) in enumerate(series.items()):
        lines.append(Series(name=name, points=[xy(i, v) for i, v in enumerate(values)],
                            colour=SERIES_COLOURS[k % len(SERIES_COLOURS)], dash=SERIES_DASHES[k % len(SERIES_DASHES)],
                            stroke_width=3 if k == 0 else 2, legend_x=legend_x))
        legend_x += 30 + 7 * len(name)  # a sample of the line, then the name (~7 px per character)
    last = len(x_labels) - 1
    x_ticks = [Tick(xy(i, 0)[0], x_labels[i]) for i in sorted({0, last // 2, last})]
    y_ticks = [Tick(xy(0, v)[1], _axis_label(v, top)) for v in (0, top / 2, top)]
    chart = LineChart(title=title, series=lines, x_ticks=x_ticks, y_ticks=y_ticks)
    if limit:
        if limit <= top:
            chart.limit = LimitLine(y=xy(0, limit)[1], label=limit_label)
        else:
            chart.note = (f"{limit_label or f'limit {limit:,.0f}'} is above the plotted range: the peak "
                          f"({_axis_label(peak, top)}) is {peak / limit:.1%} of it ({limit / max(peak, 1e-9):,.1f}× "
                          f"headroom)." if peak > 0 else f"{limit_label or f'limit {limit:,.0f}'}: nothing was sent.")
    return chart


@cache
def _charts():
    return environment().get_template("charts.html.j2").module


def bar_chart(title: str, items: list[tuple[str, float]], colour: str = "#2f6fb0", fmt: str = "{:,.0f}") -> str:
    """An HTML fragment: the chart's heading and its SVG."""
    return str(_charts().bar_chart(bar_geometry(title, items, colour, fmt)))


def line_chart(title: str, x_labels: list[str], series: dict[str, list[float]], limit: float | None = None,
               limit_label: str = "") -> str:
    """An HTML fragment: the chart's heading and its SVG (see line_geometry for the scale and the limit)."""
    return str(_charts().line_chart(line_geometry(title, x_labels, series, limit, limit_label)))


# -- data ----------------------------------------------------------------------------------------------------
def latency_histogram(outcomes: pd.DataFrame, edges=(0, 5, 10, 30, 60, 120, 300, 600)) -> list[tuple[str, int]]:
    delivered = outcomes[outcomes["status"].isin(("delivered", "read"))]
    secs = (delivered["delivered_at"] - delivered["accepted_at"]).dt.total_seconds().dropna().clip(lower=0)
    buckets = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        buckets.append((f"{lo}-{hi}s", int(((secs >= lo) & (secs < hi)).sum())))
    buckets.append((f">={edges[-1]}s", int((secs >= edges[-1]).sum())))
    return buckets


def failures_by_reason(outcomes: pd.DataFrame) -> list[tuple[str, int]]:
    failed = outcomes[outcomes["status"] == "failed"]
    reasons = (failed["error_code"].astype("Int64").astype(str) + " " + failed["error_title"].fillna("")).str.strip()
    skipped = outcomes.loc[outcomes["status"] == "skipped", "skip_reason"].fillna("skipped")
    counts = pd.concat([reasons, "skipped: " + skipped]).value_counts()
    return [(str(k), int(v)) for k, v in counts.head(12).items()]


def render_html(business_date: dt.date, kpis: dict, outcomes: pd.DataFrame, per_minute: pd.DataFrame,
                limit_mps: float, trend: pd.DataFrame, validation: dict | None, generated_at: dt.datetime,
                csv_href: str | None = "outcomes.csv") -> str:
    """The report page. `csv_href` links the outcomes CSV (written next to the page by default)."""
    o = kpis["overall"]
    funnel = [("planned", o["planned"]), ("accepted", o["accepted"]), ("delivered", o["delivered"]),
              ("read", o["read"]), ("failed", o["failed"]), ("skipped", o["skipped"])]
    minutes = [m.strftime("%H:%M") for m in pd.to_datetime(per_minute["minute"]).dt.tz_convert(config.IST)] \
        if len(per_minute) else []
    trend_labels = [str(d)[5:] for d in trend["business_date"]] if len(trend) else []
    limit_per_min = limit_mps * 60
    send_rate = line_geometry(
        "Send rate per minute vs the numbers' limit", minutes,
        {"API calls": [float(v) for v in per_minute.get("attempts", [])],
         "accepted": [float(v) for v in per_minute.get("accepted", [])]},
        limit=limit_per_min, limit_label=f"limit {limit_per_min:,.0f}/min")
    trend_chart = line_geometry(
        f"{config.REPORT_TREND_DAYS}-day trend", trend_labels,
        {k: [float(v) for v in trend[k]] for k in ("planned", "delivered", "failed")} if len(trend) else {})
    dq = None
    if validation:
        dq = {"passed": validation["evaluated"] - validation["failed"], "evaluated": validation["evaluated"],
              "results": [{"success": r["success"], "expectation": r["expectation"],
                           "unexpected_count": r["unexpected_count"], "samples": json.dumps(r["samples"])[:300]}
                          for r in validation["results"]]}
    return environment().get_template("daily_report.html.j2").render(
        business_date=business_date, generated_at=generated_at, overall=o,
        slo_ratio=config.DELIVERED_WITHIN_SLO_RATIO, csv_href=csv_href,
        funnel=bar_geometry("Delivery funnel", funnel), send_rate=send_rate,
        latency=bar_geometry("Accepted-to-delivered latency", latency_histogram(outcomes), colour="#2a9d55"),
        failures=bar_geometry("Failures and skips by reason", failures_by_reason(outcomes), colour="#c2410c"),
        trend=trend_chart, tables=[("By segment", kpis["by_segment"]), ("By sending number", kpis["by_number"])],
        dq=dq)


# The files a date's report consists of, with their media types: what the 06:30 task writes and the only files
# the cockpit serves (include/operations/cockpit/app.py).
REPORT_FILES = {
    "daily-report.html": "text/html; charset=utf-8",
    "outcomes.csv": "text/csv; charset=utf-8",
    "data-quality.json": "application/json",
    "kpis.json": "application/json",
}


def write(business_date: dt.date, files: dict[str, str | bytes]) -> dict[str, str]:
    """Write the report's files under reports/<date>/; returns their URIs."""
    unknown = sorted(set(files) - set(REPORT_FILES))
    if unknown:
        raise ValueError(f"not report files (see REPORT_FILES): {unknown}")
    from include.core.storage import data_root

    folder = data_root() / "reports" / business_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    uris = {}
    for name, content in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        uris[name] = str(path)
    return uris


def outcomes_csv(outcomes: pd.DataFrame) -> str:
    return outcomes.to_csv(index=False)


def json_dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
