"""The daily report renders from its Jinja2 template: same sections, every data value escaped, and a
send-rate chart scaled to the data with the limit drawn only when it is in range."""
import datetime as dt
import re

import pandas as pd
import pytest

from include.reporting import daily_report, kpis as kpi_mod
from include.reporting.daily_report import line_chart, line_geometry, nice_ceiling, render_html

DAY = dt.date(2026, 11, 23)
HOSTILE = "<script>alert('x')</script>"


def _inputs(n=200, segment=HOSTILE, error_title=HOSTILE, expectation="expect_column_values_to_not_be_null"):
    t0 = pd.Timestamp("2026-11-23 00:30:00", tz="UTC")
    rows, attempts = [], []
    for i in range(n):
        status = ("failed" if i % 50 == 0 else "skipped" if i % 50 == 1 else "read" if i % 3 == 0 else "delivered")
        at = t0 + pd.Timedelta(seconds=i * 240 / n)
        rows.append({"business_date": DAY, "advisor_id": i, "external_ref": f"A{i}",
                     "segment": segment if i % 5 == 0 else "gold", "shard": i % 4,
                     "phone_number_id": "pn1" if i % 2 else f"pn-{HOSTILE}", "content_source": "pack",
                     "template_name": "daily", "status": status, "attempts": 1, "wamid": f"w{i}",
                     "error_code": 131026 if status == "failed" else None,
                     "error_title": error_title if status == "failed" else None,
                     "skip_reason": "dnc_at_send_time" if status == "skipped" else None, "api_latency_ms": 40,
                     "queued_at": at, "accepted_at": None if status == "skipped" else at, "sent_at": at,
                     "delivered_at": at + pd.Timedelta(seconds=2) if status in ("delivered", "read") else None,
                     "read_at": None, "failed_at": None})
        attempts.append({"at": at, "phone_number_id": rows[-1]["phone_number_id"],
                         "outcome": "skipped" if status == "skipped" else "accepted", "error_code": None,
                         "latency_ms": 40})
    outcomes = pd.DataFrame(rows, columns=kpi_mod.OUTCOME_COLUMNS)
    for col in ("queued_at", "accepted_at", "sent_at", "delivered_at", "read_at", "failed_at"):
        outcomes[col] = pd.to_datetime(outcomes[col], utc=True)
    att = pd.DataFrame(attempts)
    trend = pd.DataFrame([{"business_date": DAY - dt.timedelta(days=13 - d), "planned": n, "accepted": n - 4,
                           "delivered": n - 8, "read": n // 3, "failed": 4, "skipped": 4} for d in range(14)])
    validation = {"evaluated": 2, "failed": 1, "success": False, "results": [
        {"success": True, "expectation": "expect_table_row_count_to_be_between", "unexpected_count": 0,
         "samples": []},
        {"success": False, "expectation": expectation, "unexpected_count": 1234,
         "samples": [{"advisor_id": 7, "error_title": HOSTILE}]}]}
    return dict(business_date=DAY, kpis=kpi_mod.compute(outcomes, att), outcomes=outcomes,
                per_minute=kpi_mod.send_rate_per_minute(att), limit_mps=80.0, trend=trend, validation=validation,
                generated_at=dt.datetime(2026, 11, 23, 6, 30, tzinfo=dt.UTC))


def test_report_has_every_section_figure_and_the_csv_link():
    page = render_html(**_inputs())
    for heading in ("Daily delivery report — 2026-11-23", "Delivery funnel", "Send rate per minute vs the numbers",
                    "Accepted-to-delivered latency", "Failures and skips by reason", "14-day trend",
                    "By segment", "By sending number", "Data quality (1/2 passed)"):
        assert heading in page, heading
    assert page.count("<svg") == 5 and page.count("<table>") == 3
    assert '<a href="outcomes.csv"' in page
    assert "Generated 2026-11-23 06:30:00 UTC" in page
    assert "<td>1,234</td>" in page  # figures keep their formatting (thousands separators, rates)
    assert re.search(r"<b>\d+\.\d\d%</b>delivery rate", page)
    assert re.search(r"<b>200</b>planned", page)
    assert "delivered ≤ 5 min (SLO " in page


def test_report_without_csv_link_or_validation():
    args = _inputs()
    args["validation"] = None
    page = render_html(**args, csv_href=None)
    assert "outcomes.csv" not in page and "Data quality" not in page


@pytest.mark.parametrize("where", ["segment", "error_title", "expectation"])
def test_data_values_are_escaped(where):
    page = render_html(**_inputs(**{where: HOSTILE}))
    assert "<script" not in page.lower()
    assert "&lt;script&gt;" in page


def test_segment_and_error_title_are_escaped_in_tables_and_charts():
    page = render_html(**_inputs())
    assert "<script" not in page.lower()
    # the segment row, the failure reason bar (title and shortened label) and the sending number row
    assert "<td>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</td>" in page
    assert "<title>131026 &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;: 4</title>" in page
    assert "<td>pn-&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</td>" in page


def test_send_rate_scales_to_the_data_and_notes_a_limit_above_it():
    page = render_html(**_inputs())
    send_rate = page.split("<h3>Send rate per minute")[1].split("<h3>")[0]
    assert "limit 4,800/min is above the plotted range" in send_rate and "×" in send_rate
    assert "stroke-dasharray=\"6 4\"" not in send_rate  # no limit line drawn
    labels = re.findall(r'text-anchor="end">([\d,.]+)</text>', send_rate)
    assert labels[0] == "0" and float(labels[-1].replace(",", "")) < 4800  # axis from 0 to the data's scale


def test_limit_within_range_is_a_line_and_series_are_distinguishable():
    chart = line_geometry("rate", ["06:00", "06:01", "06:02"], {"API calls": [50, 60, 55], "accepted": [50, 60, 55]},
                          limit=58, limit_label="limit 58/min")
    assert chart.limit is not None and chart.note is None
    assert [t.label for t in chart.y_ticks] == ["0", "40", "80"]
    assert chart.y_ticks[0].at == chart.baseline and chart.limit.y > chart.y_ticks[-1].at
    a, b = chart.series
    assert a.points == b.points and a.dash != b.dash  # identical data, still two visible styles
    html = line_chart("rate", ["06:00", "06:01", "06:02"], {"API calls": [50, 60, 55], "accepted": [50, 60, 55]},
                      limit=58, limit_label="limit 58/min")
    assert "limit 58/min" in html and html.count("<polyline") == 2
    assert html.count('stroke-dasharray="7 4"') == 2  # the accepted line and its legend sample
    assert ">API calls</text>" in html and ">accepted</text>" in html


def test_line_chart_without_data_and_with_a_single_point():
    assert "no data" in line_chart("<b>t</b>", [], {})
    assert "&lt;b&gt;t&lt;/b&gt;" in line_chart("<b>t</b>", [], {})
    one = line_chart("one", ["11-23"], {"planned": [3.0]}, limit=100, limit_label="cap")
    assert "<circle" in one and "cap is above the plotted range" in one


def test_nice_ceiling():
    assert [nice_ceiling(v) for v in (0, -5, 0.3, 1, 7, 81, 84, 4800, 5001)] == [1, 1, 0.3, 1, 8, 100, 100, 5000, 6000]


def test_templates_ship_next_to_the_module():
    assert (daily_report.TEMPLATES / "daily_report.html.j2").is_file()
    assert (daily_report.TEMPLATES / "charts.html.j2").is_file()
    env = daily_report.environment()
    assert env.autoescape is True or env.autoescape("daily_report.html.j2")
