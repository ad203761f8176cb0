"""The daily delivery report: an HTML page with charts (inline SVG, no plotting library needed), a CSV
of outcomes and the data-quality validation, all written through ObjectStoragePath under
reports/<business date>/ in the project's data root (file:// by default, s3:// etc. by configuration).

Charts: the delivery funnel, the per-minute send rate against the numbers' limit, the latency
histogram, failures by reason, and a 14-day trend.
"""
from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any

import pandas as pd

from include.core import config

W, H, PAD = 640, 240, 40


def bar_chart(title: str, items: list[tuple[str, float]], colour: str = "#2f6fb0", fmt: str = "{:,.0f}") -> str:
    if not items:
        return f"<h3>{html.escape(title)}</h3><p class='muted'>no data</p>"
    top = max(v for _, v in items) or 1
    bw = (W - 2 * PAD) / len(items)
    parts = [f"<h3>{html.escape(title)}</h3><svg width='{W}' height='{H}' role='img' "
             f"aria-label='{html.escape(title)}'>"]
    for i, (label, v) in enumerate(items):
        h = (H - 2 * PAD) * v / top
        x = PAD + i * bw
        parts.append(f"<rect x='{x + 4:.1f}' y='{H - PAD - h:.1f}' width='{bw - 8:.1f}' height='{h:.1f}' "
                     f"fill='{colour}'><title>{html.escape(label)}: {fmt.format(v)}</title></rect>")
        parts.append(f"<text x='{x + bw / 2:.1f}' y='{H - PAD + 14}' font-size='11' text-anchor='middle'>"
                     f"{html.escape(label[:14])}</text>")
        parts.append(f"<text x='{x + bw / 2:.1f}' y='{H - PAD - h - 4:.1f}' font-size='11' text-anchor='middle'>"
                     f"{fmt.format(v)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def line_chart(title: str, x_labels: list[str], series: dict[str, list[float]], limit: float | None = None,
           limit_label: str = "") -> str:
    if not x_labels:
        return f"<h3>{html.escape(title)}</h3><p class='muted'>no data</p>"
    top = max([max(v) for v in series.values() if v] + [limit or 0, 1])
    n = max(1, len(x_labels) - 1)
    colours = ["#2f6fb0", "#2a9d55", "#c2410c", "#7c3aed", "#6b7280"]

    def xy(i, v):
        return PAD + (W - 2 * PAD) * i / n, H - PAD - (H - 2 * PAD) * v / top

    parts = [f"<h3>{html.escape(title)}</h3><svg width='{W}' height='{H}' role='img' aria-label='{html.escape(title)}'>"]
    if limit:
        y = xy(0, limit)[1]
        parts.append(f"<line x1='{PAD}' x2='{W - PAD}' y1='{y:.1f}' y2='{y:.1f}' stroke='#dc2626' "
                     f"stroke-dasharray='6 4'/><text x='{W - PAD}' y='{y - 4:.1f}' font-size='11' "
                     f"text-anchor='end' fill='#dc2626'>{html.escape(limit_label)}</text>")
    for k, (name, values) in enumerate(series.items()):
        pts = " ".join(f"{xy(i, v)[0]:.1f},{xy(i, v)[1]:.1f}" for i, v in enumerate(values))
        parts.append(f"<polyline fill='none' stroke='{colours[k % len(colours)]}' stroke-width='2' points='{pts}'>"
                     f"<title>{html.escape(name)}</title></polyline>")
        parts.append(f"<text x='{PAD + 90 * k}' y='14' font-size='11' fill='{colours[k % len(colours)]}'>"
                     f"{html.escape(name)}</text>")
    last = len(x_labels) - 1
    for i in sorted({0, last // 2, last}):
        parts.append(f"<text x='{xy(i, 0)[0]:.1f}' y='{H - PAD + 14}' font-size='11' text-anchor='middle'>"
                     f"{html.escape(x_labels[i])}</text>")
    parts.append(f"<text x='4' y='{PAD}' font-size='11'>{top:,.0f}</text></svg>")
    return "".join(parts)


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
                limit_mps: float, trend: pd.DataFrame, validation: dict | None, generated_at: dt.datetime) -> str:
    o = kpis["overall"]
    funnel = [("planned", o["planned"]), ("accepted", o["accepted"]), ("delivered", o["delivered"]),
              ("read", o["read"]), ("failed", o["failed"]), ("skipped", o["skipped"])]
    minutes = [m.strftime("%H:%M") for m in pd.to_datetime(per_minute["minute"]).dt.tz_convert(config.IST)] \
        if len(per_minute) else []
    trend_labels = [str(d)[5:] for d in trend["business_date"]] if len(trend) else []

    def rate(v):
        return "n/a" if v is None else f"{v:.2%}"

    def table(title: str, groups: dict[str, dict]) -> str:
        head = ("<tr><th>" + "</th><th>".join(["", "planned", "accepted", "delivered", "read", "failed", "skipped",
                                               "delivery rate", "p50 s", "p95 s", "≤5 min"]) + "</th></tr>")
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{g['planned']:,}</td><td>{g['accepted']:,}</td>"
            f"<td>{g['delivered']:,}</td><td>{g['read']:,}</td><td>{g['failed']:,}</td><td>{g['skipped']:,}</td>"
            f"<td>{rate(g['delivery_rate'])}</td><td>{g['latency_p50_s']}</td><td>{g['latency_p95_s']}</td>"
            f"<td>{rate(g['delivered_within_5min_ratio'])}</td></tr>" for k, g in groups.items())
        return f"<h3>{html.escape(title)}</h3><table>{head}{rows}</table>"

    dq = ""
    if validation:
        dq_rows = "".join(
            f"<tr><td>{'✅' if r['success'] else '❌'}</td><td>{html.escape(r['expectation'])}</td>"
            f"<td>{r['unexpected_count']:,}</td><td>{html.escape(json.dumps(r['samples'])[:300])}</td></tr>"
            for r in validation["results"])
        dq = (f"<h2>Data quality ({validation['evaluated'] - validation['failed']}/{validation['evaluated']} "
              f"passed)</h2><table><tr><th></th><th>expectation</th><th>unexpected</th><th>samples</th></tr>"
              f"{dq_rows}</table>")
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Daily delivery report {business_date}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#111}}table{{border-collapse:collapse;margin:8px 0}}
td,th{{border:1px solid #ddd;padding:4px 8px;font-size:13px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
.muted{{color:#666}}.kpi{{display:inline-block;margin:0 24px 12px 0}}.kpi b{{font-size:22px;display:block}}</style>
</head><body>
<h1>Daily delivery report — {business_date}</h1>
<p class="muted">Generated {generated_at:%Y-%m-%d %H:%M:%S %Z}. Delivery rate = delivered (incl. read) / (planned − skipped).</p>
<div>
<span class="kpi"><b>{o['planned']:,}</b>planned</span>
<span class="kpi"><b>{rate(o['accepted_rate'])}</b>accepted</span>
<span class="kpi"><b>{rate(o['delivery_rate'])}</b>delivery rate</span>
<span class="kpi"><b>{rate(o['delivered_within_5min_ratio'])}</b>delivered ≤ 5 min (SLO {config.DELIVERED_WITHIN_SLO_RATIO:.0%})</span>
<span class="kpi"><b>{o['latency_p50_s']} / {o['latency_p95_s']} s</b>latency p50 / p95</span>
<span class="kpi"><b>{o.get('api_p95_latency_ms')} ms</b>API p95</span>
</div>
{bar_chart("Delivery funnel", funnel)}
{line_chart("Send rate per minute vs the numbers' limit", minutes,
        {"API calls": [float(v) for v in per_minute.get("attempts", [])],
         "accepted": [float(v) for v in per_minute.get("accepted", [])]}, limit=limit_mps * 60,
        limit_label=f"limit {limit_mps * 60:,.0f}/min")}
{bar_chart("Accepted-to-delivered latency", latency_histogram(outcomes), colour="#2a9d55")}
{bar_chart("Failures and skips by reason", failures_by_reason(outcomes), colour="#c2410c")}
{line_chart(f"{config.REPORT_TREND_DAYS}-day trend", trend_labels,
        {k: [float(v) for v in trend[k]] for k in ("planned", "delivered", "failed")} if len(trend) else {})}
{table("By segment", kpis["by_segment"])}
{table("By sending number", kpis["by_number"])}
{dq}
</body></html>"""


def write(business_date: dt.date, files: dict[str, str | bytes]) -> dict[str, str]:
    """Write the report's files under reports/<date>/; returns their URIs."""
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
