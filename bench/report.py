"""KPIs + Great Expectations + the HTML/CSV report over N outcome rows (the 06:30 checkpoint's work).
Target: under 30 s for 100k outcomes (median of --runs).

    .venv/bin/python -m bench.report [--advisors 100000] [--runs 3]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time

import sqlalchemy as sa

from bench.common import median, write_result
from bench.support import app_database
from include.content import readiness as content
from devtools import demo_world
from include.delivery import planning

DAY = dt.date(2026, 11, 23)

# Outcomes shaped like a real morning: ~96% delivered (a third read), 1% failed by webhook, 1% rejected
# by the API, 1% skipped (DNC at send time), 1% still only accepted; sends spread over 5 minutes.
SYNTHESISE = """
INSERT INTO deliveries (idempotency_key, business_date, advisor_id, phone_number_id, to_phone, template_name, pack_id,
                        status, attempts, wamid, error_code, error_title, skip_reason, api_latency_ms, queued_at,
                        accepted_at, sent_at, delivered_at, read_at, failed_at)
SELECT p.business_date || ':' || p.advisor_id, p.business_date, p.advisor_id, p.phone_number_id, a.phone_e164,
       p.template_name, p.pack_id, o.status, 1,
       CASE WHEN o.status NOT IN ('skipped', 'api_failed') THEN 'wamid.b' || p.advisor_id END,
       CASE WHEN o.status = 'failed' THEN 131026 END, CASE WHEN o.status = 'failed' THEN 'Message undeliverable' END,
       CASE WHEN o.status = 'skipped' THEN 'dnc_at_send_time' END, 20 + (p.advisor_id % 80), t.t0, t.t0, t.t0,
       CASE WHEN o.status IN ('delivered', 'read') THEN t.t0 + make_interval(secs => 1 + p.advisor_id % 40) END,
       CASE WHEN o.status = 'read' THEN t.t0 + make_interval(secs => 60 + p.advisor_id % 600) END,
       CASE WHEN o.status = 'failed' THEN t.t0 + interval '3 seconds' END
FROM delivery_plan p
JOIN advisors a USING (advisor_id)
CROSS JOIN LATERAL (SELECT timestamptz '2026-11-23 00:30:00+00' + make_interval(secs => (p.jitter_ms / 1000.0)) AS t0) t
CROSS JOIN LATERAL (SELECT CASE WHEN p.advisor_id % 100 = 0 THEN 'failed' WHEN p.advisor_id % 100 = 1 THEN 'skipped'
                                WHEN p.advisor_id % 100 = 2 THEN 'accepted'
                                WHEN p.advisor_id % 3 = 0 THEN 'read' ELSE 'delivered' END AS status) o
WHERE p.business_date = :d
"""
ATTEMPTS = """
INSERT INTO delivery_attempts (business_date, advisor_id, attempt_no, phone_number_id, outcome, error_code,
                               latency_ms, at)
SELECT business_date, advisor_id, 1, phone_number_id, CASE WHEN status = 'skipped' THEN 'skipped' ELSE 'accepted' END,
       NULL, api_latency_ms, accepted_at
FROM deliveries WHERE business_date = :d
"""


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--advisors", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    data_dir = tempfile.mkdtemp(prefix="fa-bench-report-")
    os.environ["FA_DATA_DIR"] = data_dir
    runs = []
    try:
        with app_database() as (_pg, engine, _url):
            demo_world.seed_world(engine, advisors=args.advisors, today=DAY)
            content.assign_content(engine, DAY)
            planning.build_plan(engine, DAY, {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"}, jitter_window_s=240)
            with engine.begin() as c:
                c.execute(sa.text(SYNTHESISE), {"d": DAY})
                c.execute(sa.text("UPDATE deliveries SET status = 'failed', error_code = 131049, "
                                  "error_title = 'Not delivered to maintain ecosystem health', wamid = NULL "
                                  "WHERE advisor_id % 100 = 3"))
                c.execute(sa.text(ATTEMPTS), {"d": DAY})
                c.execute(sa.text("ANALYZE"))
                rows = c.execute(sa.text("SELECT count(*) FROM deliveries")).scalar_one()
            from include.reporting import data_quality, kpis
            from include.reporting.post_delivery_report import final_report

            for _ in range(args.runs):
                t0 = time.perf_counter()
                outcomes, attempts = kpis.load_outcomes(engine, DAY), kpis.load_attempts(engine, DAY)
                t1 = time.perf_counter()
                k = kpis.compute(outcomes, attempts)
                t2 = time.perf_counter()
                validation = data_quality.validate(data_quality.load_frames(engine, DAY, k["overall"]["delivery_rate"]))
                t3 = time.perf_counter()
                out = final_report(engine, DAY)
                t4 = time.perf_counter()
                runs.append({"load_s": round(t1 - t0, 2), "kpis_s": round(t2 - t1, 2), "gx_s": round(t3 - t2, 2),
                             "final_report_total_s": round(t4 - t3, 2), "gx_success": validation["success"],
                             "failed_expectations": out["failed_expectations"],
                             "delivery_rate": out["kpis"]["overall"]["delivery_rate"]})
                print(runs[-1])
            html_bytes = os.path.getsize(os.path.join(data_dir, "objects", "reports", str(DAY), "daily-report.html"))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    total = median([r["final_report_total_s"] for r in runs])
    figures = {"outcome_rows": rows, "runs": runs, "median_final_report_s": total, "report_html_bytes": html_bytes,
               "target_s": 30, "meets_target": total < 30}
    write_result("report", figures)
    return figures


if __name__ == "__main__":
    main()
