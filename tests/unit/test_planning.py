"""Plan invariants against real PostgreSQL: eligible advisors only, each exactly once, balanced and
stable shards, jitter inside the window, idempotent rebuilds that never touch sent rows."""
import pytest
import sqlalchemy as sa

from include.content import readiness as content

from include.delivery import planning
from tests.world import DAY, make_ready, rows, scalar, seed

TEMPLATES = {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"}


def _plan(engine, window_s=60):
    content.assign_content(engine, DAY)
    return planning.build_plan(engine, DAY, TEMPLATES, jitter_window_s=window_s)


def test_plan_holds_every_eligible_advisor_exactly_once_and_nobody_else(app_db):
    seed(app_db, advisors=2000)
    make_ready(app_db)
    result = _plan(app_db)
    eligible = {r[0] for r in rows(app_db, "SELECT advisor_id FROM eligible_advisors")}
    planned = [r[0] for r in rows(app_db, "SELECT advisor_id FROM delivery_plan WHERE business_date = :d", d=DAY)]
    assert len(planned) == len(set(planned)) == result.total == len(eligible)
    assert set(planned) == eligible
    bad = scalar(app_db, """SELECT count(*) FROM delivery_plan p JOIN advisors a USING (advisor_id)
                            WHERE NOT a.active OR NOT a.opted_in
                               OR a.phone_e164 IN (SELECT phone_e164 FROM do_not_contact)""")
    assert bad == 0
    assert scalar(app_db, "SELECT count(*) FROM advisors WHERE NOT opted_in OR NOT active") > 0
    assert scalar(app_db, "SELECT count(*) FROM do_not_contact") > 0
    assert set(result.by_segment) == {"mutual_fund", "equity", "insurance", "wealth"}


def test_shards_balanced_within_one_percent_and_stable_across_rebuilds(app_db):
    seed(app_db, advisors=2000)
    make_ready(app_db)
    first = _plan(app_db)
    assert len(first.by_shard) == 4 and first.imbalance <= 0.01
    before = rows(app_db, "SELECT advisor_id, phone_number_id, shard, jitter_ms FROM delivery_plan ORDER BY 1")
    again = _plan(app_db)
    assert again.written == 0 and again.removed == 0  # nothing to change
    after = rows(app_db, "SELECT advisor_id, phone_number_id, shard, jitter_ms FROM delivery_plan ORDER BY 1")
    assert before == after


def test_jitter_spreads_over_the_window(app_db):
    seed(app_db, advisors=1000)
    make_ready(app_db)
    _plan(app_db, window_s=90)
    lo, hi, distinct = rows(app_db, "SELECT min(jitter_ms), max(jitter_ms), count(DISTINCT jitter_ms / 10000) "
                                    "FROM delivery_plan")[0]
    assert 0 <= lo < 5_000 and 85_000 < hi < 90_000 and distinct == 9


def test_rebuild_never_touches_rows_already_sent_and_drops_new_dnc(app_db):
    seed(app_db, advisors=200)
    make_ready(app_db)
    _plan(app_db)
    sent, dnc = rows(app_db, "SELECT advisor_id, phone_number_id FROM delivery_plan ORDER BY advisor_id LIMIT 2")
    with app_db.begin() as c:
        c.execute(sa.text("INSERT INTO deliveries (idempotency_key, business_date, advisor_id, to_phone, status, wamid,"
                          " phone_number_id) SELECT CAST(:d AS text) || ':' || advisor_id, :d, advisor_id, phone_e164, 'accepted',"
                          " 'wamid.x', :pn FROM advisors WHERE advisor_id = :a"),
                  {"d": DAY, "a": sent.advisor_id, "pn": sent.phone_number_id})
        c.execute(sa.text("INSERT INTO do_not_contact (phone_e164, reason, source) SELECT phone_e164, 'asked',"
                          " 'operator' FROM advisors WHERE advisor_id IN (:a, :b)"),
                  {"a": sent.advisor_id, "b": dnc.advisor_id})
        # The template choice changes: unsent rows follow, the sent row must not.
    planning.build_plan(app_db, DAY, {"en": "daily_pack_v2", "hi": "daily_pack_hi_v2"}, jitter_window_s=60)
    kept = rows(app_db, "SELECT template_name FROM delivery_plan WHERE advisor_id = :a", a=sent.advisor_id)
    assert [k[0] for k in kept] in (["daily_pack_v1"], ["daily_pack_hi_v1"])
    assert rows(app_db, "SELECT 1 FROM delivery_plan WHERE advisor_id = :a", a=dnc.advisor_id) == []
    others = {r[0] for r in rows(app_db, "SELECT template_name FROM delivery_plan WHERE advisor_id <> :a",
                                 a=sent.advisor_id)}
    assert others <= {"daily_pack_v2", "daily_pack_hi_v2"}


def test_fallback_is_assigned_with_a_reason_and_rotates_over_seven_days(app_db):
    import datetime as dt

    seed(app_db, advisors=60)
    per_advisor: dict[int, list[int]] = {}
    for i in range(8):
        day = DAY + dt.timedelta(days=i)
        res = content.assign_content(app_db, day)
        assert res.unassigned == 0 and res.fallback == res.eligible
        for aid, pack, reason in rows(app_db, "SELECT advisor_id, pack_id, reason FROM pack_assignments "
                                              "WHERE business_date = :d", d=day):
            assert "no approved pack" in reason
            per_advisor.setdefault(aid, []).append(pack)
    for packs in per_advisor.values():
        for i in range(len(packs)):
            window = packs[max(0, i - 7):i]
            assert packs[i] not in window, packs
    # Rerunning a day changes nothing.
    before = rows(app_db, "SELECT * FROM pack_assignments ORDER BY 1, 2")
    content.assign_content(app_db, DAY + dt.timedelta(days=7))
    assert rows(app_db, "SELECT * FROM pack_assignments ORDER BY 1, 2") == before


def _analyze_count(engine, table: str) -> int:
    with engine.connect() as c:  # statistics counters reach pg_stat views once the backend flushes them
        c.execute(sa.text("SELECT pg_stat_force_next_flush()"))
    with engine.connect() as c:
        c.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        return c.execute(sa.text("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = :t"),
                         {"t": table}).scalar()


def test_statistics_are_refreshed_where_rows_are_written_and_only_then(app_db):
    """The plan is analyzed when it is written (05:50), the queue when it is filled (06:00): the claim query plans
    with today's row counts. Queuing nothing new (a retried prepare_send_queue) re-analyzes nothing."""
    from include.delivery.fanout import enqueue

    seed(app_db, advisors=300)
    make_ready(app_db)
    plans, queues = _analyze_count(app_db, "delivery_plan"), _analyze_count(app_db, "deliveries")
    _plan(app_db)
    assert _analyze_count(app_db, "delivery_plan") == plans + 1
    assert enqueue(app_db, DAY) > 0
    assert _analyze_count(app_db, "deliveries") == queues + 1
    assert _analyze_count(app_db, "delivery_plan") == plans + 1  # not again at 06:00
    assert enqueue(app_db, DAY) == 0
    assert _analyze_count(app_db, "deliveries") == queues + 1


@pytest.mark.parametrize(("open_rows", "processes", "groups"), [
    ([2400, 2400, 2400, 2400], 1, [("a", "b", "c", "d")]),
    ([2400, 2400, 2400, 2400], 2, [("a", "b"), ("c", "d")]),
    ([2400, 2400, 2400, 2400], 4, [("a",), ("b",), ("c",), ("d",)]),
    ([2400, 2400, 2400, 2400], 9, [("a",), ("b",), ("c",), ("d",)]),  # never more units than segment groups
    ([9000, 100, 100, 100], 2, [("a",), ("b", "c", "d")]),             # balanced by open rows
    ([100, 100, 100, 9000], 2, [("a", "b", "c"), ("d",)]),
    ([100, 100, 100, 9000], 3, [("a", "b"), ("c",), ("d",)]),          # every unit gets a segment group
    ([0, 0, 0, 0], 2, [("a",), ("b", "c", "d")]),
])
def test_a_fast_numbers_segment_groups_split_into_contiguous_runs(open_rows, processes, groups):
    from include.delivery.fanout.units import segment_groups

    assert segment_groups(["a", "b", "c", "d"], open_rows, processes) == groups


@pytest.mark.parametrize(("rate", "latency_s", "window"), [
    (500, 0.030, 32),     # 500 msg/s at 30 ms needs 15 open: the floor
    (500, 0.060, 60),     # twice what Little's law gives at the mean latency
    (495.0, 0.061, 61),   # rounded up, never down to a window that cannot keep the rate
    (400, 0.250, 200),    # a slow API: the window grows with it
    (500, 0.800, 500),    # ... up to rate x SENDER_MAX_IN_FLIGHT_S (1 s)
    (500, 10.0, 500),     # answers timing out do not open more than that
    (500, None, 500),     # no latency known: the most it may hold (the connection pool's size)
    (40, 0.250, 32),      # never below the floor
    (0.5, 0.250, 32),     # a throttled-down share still keeps the floor
])
def test_a_senders_in_flight_window_follows_its_rate_and_the_apis_latency(rate, latency_s, window):
    """Little's law: a sender at r msg/s holds r x latency requests open. Its window is twice that at the last
    control tick's mean latency, within [SENDER_MIN_IN_FLIGHT, r x SENDER_MAX_IN_FLIGHT_S]: a fixed window caps
    the rate at window / latency, and one far above the need lets a stall bunch requests into a burst."""
    from include.delivery.fanout.units import SenderOptions

    opts = SenderOptions(min_in_flight=32, in_flight_latencies=2.0, max_in_flight_s=1.0)
    assert opts.in_flight_for(rate, latency_s) == window
