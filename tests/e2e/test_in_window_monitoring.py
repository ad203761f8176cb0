"""In-window paging: more than 2% failures within 2 minutes posts a P0 while sending is still going on."""
import threading
import time

import pytest
import sqlalchemy as sa

from tests.e2e.test_delivery_fanout import _all_units, _options, _settings
from tests.world import DAY, make_ready, seed

pytestmark = pytest.mark.e2e


def test_failure_rate_over_2_percent_pages_during_the_window(app_db, sandbox):
    from include.content import readiness as content
    from include.delivery import planning
    from include.delivery.fanout import send_unit

    seed(app_db, advisors=300)
    with app_db.begin() as c:  # 5% of recipients are undeliverable research numbers (131026 at the API)
        c.execute(sa.text("UPDATE advisors SET phone_e164 = '+9199000000' || lpad(advisor_id::text, 3, '0') || '7' "
                          "WHERE advisor_id % 20 = 0"))
    make_ready(app_db)
    content.assign_content(app_db, DAY)
    planning.build_plan(app_db, DAY, {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"}, jitter_window_s=1)
    with app_db.begin() as c:  # spread the sends over ~12 s so there is a "during"
        c.execute(sa.text("UPDATE delivery_plan SET jitter_ms = (advisor_id * 53) % 12000"))
    units = _all_units(app_db)
    finished = threading.Event()
    first_p0_while_running = []

    def watch():
        while not finished.is_set():
            if any(p["payload"]["text"].startswith("[P0]") and "Failure rate" in p["payload"]["text"]
                   for p in sandbox.slack_posts()):
                first_p0_while_running.append(time.monotonic())
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=send_unit, args=(app_db, _settings(sandbox), u, _options(sandbox)))
               for u in units]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    finished.set()
    watcher.join()
    assert first_p0_while_running, [p["payload"]["text"] for p in sandbox.slack_posts()]
    failed = [p for p in sandbox.slack_posts() if "Failure rate" in p["payload"]["text"]]
    assert len(failed) == 1  # raised once, however many senders saw it
