"""delivery_fanout end to end: dag.test() against PostgreSQL and the sandbox, ~200 advisors with
research-mode recipients. The sandbox ledger proves nothing was sent twice and nothing was lost."""
import sqlalchemy as sa

import pytest

from include.core.dates import ist_today
from tests.world import DAY, planned_world, rows, scalar

pytestmark = pytest.mark.e2e
# delivery_fanout delivers today (IST) only; past dates go through ops_backfill_delivery.
TODAY = ist_today()
CONF = {"business_date": str(TODAY), "honour_jitter": False}


@pytest.fixture(scope="module")
def dag():
    from tests.support import load_dag

    return load_dag("delivery_fanout")


def assert_no_duplicates_and_nothing_lost(engine, sandbox):
    stats = sandbox.ledger_stats()
    assert stats["duplicate_recipient_days"] == {} and stats["duplicate_idempotency_keys"] == {}
    accepted = scalar(engine, "SELECT count(*) FROM deliveries WHERE status IN ('accepted','sent','delivered','read')")
    assert accepted == stats["accepted"]  # every ledger send is recorded, every recorded send is in the ledger
    keys = {e["biz_opaque_callback_data"] for e in sandbox.ledger(limit=100000)}
    ours = {r[0] for r in rows(engine, "SELECT idempotency_key FROM deliveries WHERE wamid IS NOT NULL")}
    assert keys == ours
    planned = scalar(engine, "SELECT count(*) FROM delivery_plan")
    assert scalar(engine, "SELECT count(*) FROM deliveries") == planned


def test_happy_path_accepts_more_than_99_percent(dag, app_db, sandbox, airflow_db):
    planned = planned_world(app_db, day=TODAY)
    dr = dag.test(run_conf=CONF)
    assert dr.state == "success"
    accepted = scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'accepted'")
    assert accepted / planned > 0.99
    assert_no_duplicates_and_nothing_lost(app_db, sandbox)
    # The temporary-failure research number needed retries; its attempts are recorded.
    assert scalar(app_db, "SELECT max(attempts) FROM deliveries") >= 3
    maps = rows(app_db, "SELECT count(DISTINCT (shard, segment)) FROM delivery_plan")[0][0]
    assert 1 < maps <= 64
    # Each mapped sender is named by its number, shard and segment groups (rendered from its argument).
    labels = [ti.rendered_map_index for ti in dr.get_task_instances() if ti.task_id == "send_shard"]
    assert labels and all(lb and lb.startswith("+91") and " · shard " in lb for lb in labels), labels
    summary = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any("Delivery fan-out summary" in t for t in summary)
    assert not any(t.startswith("[P0]") for t in summary), summary
    # A second run for the same date sends nothing.
    before = sandbox.ledger_stats()["accepted"]
    assert dag.test(run_conf=CONF).state == "success"
    assert sandbox.ledger_stats()["accepted"] == before


@pytest.mark.parametrize("offset_days, message", [(-1, "ops_backfill_delivery"), (1, "in the future")])
def test_a_manual_run_for_another_day_is_refused_and_sends_nothing(dag, app_db, sandbox, airflow_db, offset_days,
                                                                   message, caplog):
    import datetime as dt
    import logging

    day = TODAY + dt.timedelta(days=offset_days)
    planned_world(app_db, advisors=40, research_digits="", day=day)
    with caplog.at_level(logging.INFO, logger="include.core.alerting"):
        dr = dag.test(run_conf={"business_date": str(day), "honour_jitter": False})
    assert dr.state == "failed"
    assert sandbox.ledger_stats()["accepted"] == 0 and scalar(app_db, "SELECT count(*) FROM deliveries") == 0
    # An operator's typo does not page on-call: no P1 "Task failed" post; the refusal is in the task log.
    posts = [p["payload"] for p in sandbox.slack_posts()]
    assert not any("Task failed" in str(p) or message in str(p) for p in posts), posts
    refused = [r.getMessage() for r in caplog.records if "OPERATOR INPUT REFUSED" in r.getMessage()]
    assert any(message in m and "prepare_send_queue" in m for m in refused), refused
    prepare = next(t for t in dr.get_task_instances() if t.task_id == "prepare_send_queue")
    assert prepare.state == "failed" and prepare.try_number == 1  # an operator's typo is not retried


# -- driving one sender unit directly (the body of a mapped send_shard task) -----------------------
def sender_killed_after(accepted: int, sandbox, pg_server, engine, unit: dict) -> None:
    """Run one unit in its own process, as a send_shard task would, and SIGKILL it once the sandbox has
    accepted `accepted` messages: whatever it had claimed stays 'sending', its fate unwritten."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.support import ROOT, TEST_TOKEN

    script = (
        "from include.core.db import get_engine; from include.delivery.fanout import send_unit, SenderOptions;"
        "from include.whatsapp.client import WhatsAppSettings;"
        f"s=WhatsAppSettings(base_url={sandbox.url!r}, access_token={TEST_TOKEN!r}, waba_id='200000000000001');"
        f"send_unit(get_engine({pg_server.url(engine.url.database)!r}), s, {unit!r}, SenderOptions(jitter_honoured=False))")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while sandbox.ledger_stats()["accepted"] < accepted and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _settings(sandbox):
    from include.whatsapp.client import WhatsAppSettings
    from tests.support import TEST_TOKEN

    return WhatsAppSettings(base_url=sandbox.url, access_token=TEST_TOKEN, waba_id="200000000000001",
                            read_timeout_s=2.0)


def _options(sandbox, **kw):
    from include.delivery.fanout import SenderOptions

    # Production mode (no sandbox evidence); short clocks so the suite stays fast. Margins stay above the
    # sandbox's webhook latency (50 ms for 'sent'), as production's 10 s stay above Meta's.
    defaults = dict(stale_sending_s=2, unknown_resolve_after_s=3, watermark_margin_s=3, settle_wait_s=8,
                    settle_poll_s=0.3, number_check_s=0.5, control_tick_s=0.2)
    return SenderOptions(**{**defaults, **kw})


def _all_units(engine, **kw):
    from include.delivery.fanout import enqueue, units_for

    enqueue(engine, DAY)
    return units_for(engine, DAY, **kw)


def _send_all(engine, sandbox, parallel=False, **kw):
    """Run every unit: one after another (as dag.test does) or concurrently (as the scheduler does)."""
    from concurrent.futures import ThreadPoolExecutor

    from include.delivery.fanout import send_unit

    units = _all_units(engine)
    if not parallel:
        return [send_unit(engine, _settings(sandbox), u, _options(sandbox, **kw)) for u in units]
    with ThreadPoolExecutor(len(units)) as pool:
        return list(pool.map(lambda u: send_unit(engine, _settings(sandbox), u, _options(sandbox, **kw)), units))


def test_a_fast_number_gets_several_units_that_share_its_rate_through_leases(app_db, sandbox):
    """A number faster than one process feeds (FA_SENDER_PROCESS_MPS) gets ceil(msg/s / that) units, each a run
    of its segment groups in send order. A sender starts at its planned share; alone it takes the whole number,
    and when a peer's lease appears both hold half."""
    from include.core import config
    from include.delivery.fanout import ShardSender, Unit

    planned_world(app_db, advisors=200, research_digits="")
    with app_db.begin() as c:
        c.execute(sa.text("UPDATE sending_numbers SET throughput_mps = 1000 WHERE shard = 0 AND role = 'primary'"))
    units = [u for u in _all_units(app_db, process_mps=250) if u["shard"] == 0]
    assert len(units) == len(config.SEGMENTS) and {u["peers"] for u in units} == {len(units)}
    assert sorted(u["segments"] for u in units) == sorted([s] for s in config.SEGMENTS)
    two = [u for u in _all_units(app_db) if u["shard"] == 0]  # 1,000 msg/s at the default 500 per process
    assert len(two) == 2 and {u["peers"] for u in two} == {2}
    with app_db.connect() as c:
        send_order = [r.code for r in c.execute(sa.text("SELECT code FROM segments ORDER BY send_order"))]
    runs = sorted((u["segments"] for u in two), key=lambda segs: send_order.index(segs[0]))
    assert runs[0] + runs[1] == send_order  # two contiguous runs of the send order

    full = 1000 * config.SENDER_RATE_HEADROOM
    def tick(sender):  # the lease tick's body, as the sender's loop runs it
        sender.bucket.set_ceiling(sender._lease_tick())

    first = ShardSender(app_db, _settings(sandbox), Unit.from_dict(units[0]), _options(sandbox))
    first._resolve_number()
    first._initial_bucket()
    assert first.bucket.ceiling == pytest.approx(full / len(units))  # before any lease is known
    tick(first)
    assert first.bucket.ceiling == pytest.approx(full)  # alone on the number
    second = ShardSender(app_db, _settings(sandbox), Unit.from_dict(units[1]), _options(sandbox))
    second._resolve_number()
    second._initial_bucket()
    tick(second)  # its lease is live: the next tick of the first one halves it
    tick(first)
    assert first.bucket.ceiling == pytest.approx(full / 2) and second.bucket.ceiling == pytest.approx(full / 2)
    second._release()
    tick(first)
    assert first.bucket.ceiling == pytest.approx(full)
    first._release()


def _fast_number_units(app_db):
    planned_world(app_db, advisors=200, research_digits="")
    with app_db.begin() as c:
        c.execute(sa.text("UPDATE sending_numbers SET throughput_mps = 1000 WHERE shard = 0 AND role = 'primary'"))
    return [u for u in _all_units(app_db, process_mps=250) if u["shard"] == 0]  # one unit per segment group


def _gate(senders, delays):
    """Run the senders' start gates concurrently, each starting after its delay; return when each passed."""
    import asyncio
    import time

    async def one(sender, delay):
        await asyncio.sleep(delay)
        sender._resolve_number()
        sender._initial_bucket()
        await sender._start_gate()
        return time.monotonic()

    async def all_():
        return await asyncio.gather(*(one(s, d) for s, d in zip(senders, delays, strict=True)))

    started = time.monotonic()
    return [t - started for t in asyncio.run(all_())]


def test_senders_sharing_a_number_start_together_at_their_planned_share(app_db, sandbox):
    """The start gate: the senders of a fast number wait for their last planned peer, then all send at once at
    a quarter each; none runs alone at a quarter (or grows into the number) while a peer is still starting."""
    from include.core import config
    from include.delivery.fanout import ShardSender, Unit

    units = _fast_number_units(app_db)
    senders = [ShardSender(app_db, _settings(sandbox), Unit.from_dict(u), _options(sandbox, peer_start_wait_s=5))
               for u in units]
    passed = _gate(senders, [0, 0, 0.1, 0.6])  # the last process starts 0.6 s after the first
    assert min(passed) >= 0.6 and max(passed) - min(passed) < 0.3, passed  # together, once the last one is on
    assert max(passed) < 2.0, passed  # not the gate's limit, nor a control tick's wait
    for s in senders:
        assert s.bucket.ceiling == pytest.approx(1000 * config.SENDER_RATE_HEADROOM / len(units))
        s._release()


def test_a_peer_that_never_starts_holds_the_gate_only_until_its_limit(app_db, sandbox):
    from include.core import config
    from include.delivery.fanout import ShardSender, Unit

    units = _fast_number_units(app_db)
    present = [ShardSender(app_db, _settings(sandbox), Unit.from_dict(u), _options(sandbox, peer_start_wait_s=0.8))
               for u in units[:-1]]  # the fourth sender's process never comes (no executor slot, crashed)
    passed = _gate(present, [0, 0, 0])
    assert all(0.8 <= t < 1.5 for t in passed), passed
    for s in present:  # the live ones share the number between them
        assert s.bucket.ceiling == pytest.approx(1000 * config.SENDER_RATE_HEADROOM / len(present))
    # The missing one arrives after its peers' gate closed: they may have grown, so it gives them one control
    # tick to see its lease before it sends, and then everyone is at a quarter.
    late = ShardSender(app_db, _settings(sandbox), Unit.from_dict(units[-1]), _options(sandbox, peer_start_wait_s=0.8))
    for s in present:
        s.bucket.set_ceiling(s._lease_tick())  # their ticks keep their leases live
    waited = _gate([late], [0])[0]
    assert waited >= 1.5 * late.opt.control_tick_s, waited
    assert late.bucket.ceiling == pytest.approx(1000 * config.SENDER_RATE_HEADROOM / len(units))
    for s in [*present, late]:
        s._release()


def test_the_start_gate_rides_out_a_database_blip(app_db, sandbox):
    """PostgreSQL away for a moment while senders wait at the gate: they retry, and start together once it is back."""
    import sqlalchemy.exc

    from include.core import config
    from include.delivery.fanout import ShardSender, Unit

    units = _fast_number_units(app_db)
    senders = [ShardSender(app_db, _settings(sandbox), Unit.from_dict(u), _options(sandbox, peer_start_wait_s=5))
               for u in units]
    real = senders[0].control.start_gate
    failures = iter(range(3))

    def flaky():
        if next(failures, None) is not None:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return real()

    senders[0].control.start_gate = flaky
    passed = _gate(senders, [0, 0, 0, 0])
    assert max(passed) - min(passed) < 0.3 and max(passed) < 2.0, passed
    assert next(failures, None) is None  # the blip happened
    for s in senders:
        assert s.bucket.ceiling == pytest.approx(1000 * config.SENDER_RATE_HEADROOM / len(units))
        s._release()


def test_each_sender_reports_its_startup_and_its_wait_for_peers(app_db, sandbox):
    """A sender's result says how long it took from its start to its first send, and how much of that it waited at
    the start gate: the figures a slow 06:00 start is diagnosed from (the benchmark collects them too)."""
    import threading
    import time

    from include.delivery.fanout import send_unit

    units = _fast_number_units(app_db)
    results: dict[int, dict] = {}

    def run(i, unit, delay):
        time.sleep(delay)
        results[i] = send_unit(app_db, _settings(sandbox), unit, _options(sandbox, peer_start_wait_s=5))

    threads = [threading.Thread(target=run, args=(i, u, 0.8 if i == len(units) - 1 else 0))
               for i, u in enumerate(units)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == len(units) and all(r["accepted"] > 0 for r in results.values()), results
    for r in results.values():
        assert 0 <= r["start_gate_s"] <= r["startup_s"] < r["elapsed_s"], r
    # The early ones waited at the gate for the late one; the late one found them all there.
    early = [results[i]["start_gate_s"] for i in range(len(units) - 1)]
    assert min(early) >= 0.4 and results[len(units) - 1]["start_gate_s"] < min(early), results


def test_crash_mid_batch_then_retry_sends_nobody_twice_and_loses_nobody(app_db, sandbox, receiver, pg_server):
    import time

    from include.delivery.fanout import enqueue, send_unit

    planned_world(app_db, advisors=200, research_digits="")
    enqueue(app_db, DAY)
    sandbox.faults(latency_ms_median=40, latency_ms_p99=80)
    with app_db.begin() as c:  # one unit with all the rows, so the crash is surely mid-batch
        c.execute(sa.text("UPDATE delivery_plan SET shard = 0, segment = 'equity', phone_number_id = '100000000000001'"))
    unit = {"business_date": str(DAY), "shard": 0, "segment": "equity"}
    sender_killed_after(40, sandbox, pg_server, app_db, unit)
    sent_before_crash = sandbox.ledger_stats()["accepted"]
    assert 40 <= sent_before_crash < 190, "the crash must land mid-run"
    in_doubt = scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'sending'")
    assert in_doubt > 0  # claimed rows whose fate the dead process never wrote down
    deadline = time.monotonic() + 10  # the retry judges them once they are older than stale_sending_s (2 s)
    while scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'sending' "
                         "AND sending_at > now() - interval '2 seconds'") and time.monotonic() < deadline:
        time.sleep(0.05)
    result = send_unit(app_db, _settings(sandbox), unit, _options(sandbox, jitter_honoured=False))  # the task retry
    assert result["reconciled_accepted"] > 0
    assert_no_duplicates_and_nothing_lost(app_db, sandbox)
    unresolved = scalar(app_db, "SELECT count(*) FROM deliveries WHERE status NOT IN ('accepted','failed','skipped')")
    assert unresolved == 0


def test_a_sender_keeps_its_rate_when_the_api_answers_slowly(app_db, sandbox):
    """Requests open at once follow the sender's rate (Little's law: rate x latency). With the API answering in
    250 ms a 400 msg/s number needs ~100 open requests: a fixed window of 32 held it to 32 / 0.25 = 128 msg/s."""
    from include.delivery.fanout import enqueue, send_unit

    planned_world(app_db, advisors=600, research_digits="")
    enqueue(app_db, DAY)
    sandbox.admin.post("/_sandbox/numbers/100000000000001", json={"throughput_level": "HIGH"}).raise_for_status()
    sandbox.faults(latency_ms_median=250, latency_ms_p99=250)
    with app_db.begin() as c:  # one unit, one number at 400 msg/s
        c.execute(sa.text("UPDATE delivery_plan SET shard = 0, segment = 'equity', phone_number_id = '100000000000001'"))
        c.execute(sa.text("UPDATE sending_numbers SET throughput_mps = 400 WHERE phone_number_id = '100000000000001'"))
    unit = {"business_date": str(DAY), "shard": 0, "segment": "equity"}
    result = send_unit(app_db, _settings(sandbox), unit, _options(sandbox, jitter_honoured=False))
    with app_db.connect() as c:
        accepted, first, last = c.execute(sa.text(
            "SELECT count(*), min(accepted_at), max(accepted_at) FROM deliveries WHERE status = 'accepted'")).one()
    assert result["accepted"] == accepted == scalar(app_db, "SELECT count(*) FROM delivery_plan")
    rate = accepted / (last - first).total_seconds()
    assert rate >= 0.8 * 400, f"{rate:.0f} msg/s against a 400 msg/s number with 250 ms API latency"
    assert sandbox.ledger_stats()["counters"].get("throttled", 0) == 0


def test_a_paused_sender_with_nothing_left_to_send_ends_at_once(app_db, sandbox):
    """The budget's stop can land just after a unit's last send: a paused sender with nothing queued or unresolved
    ends within a second instead of waiting out FA_SENDER_MAX_PAUSE_S (once seen: 20 min in a benchmark)."""
    import time

    from include.delivery.fanout import send_unit
    from include.delivery.kill_switch import set_sending_paused

    planned_world(app_db, advisors=30, research_digits="")
    unit = _all_units(app_db)[0]
    _send_all(app_db, sandbox)
    set_sending_paused(app_db, True, "budget drill", "tests")
    started = time.monotonic()
    result = send_unit(app_db, _settings(sandbox), unit, _options(sandbox, max_pause_s=60))
    assert time.monotonic() - started < 5
    assert result["stopped_reason"] is None and result["remaining_queued"] == 0


def test_a_sender_started_while_the_kill_switch_is_on_sends_nothing_until_it_is_released(app_db, sandbox):
    """The start-up checks run side by side (templates and control, unknown outcomes, the kill switch): a switch
    engaged before the sender starts holds its very first send, and the release lets it finish, nobody twice."""
    import threading
    import time

    from include.delivery.fanout import send_unit
    from include.delivery.kill_switch import set_sending_paused

    planned_world(app_db, advisors=60, research_digits="")
    unit = _all_units(app_db)[0]
    set_sending_paused(app_db, True, "drill: paused before 06:00", "tests")
    results = []
    runner = threading.Thread(target=lambda: results.append(
        send_unit(app_db, _settings(sandbox), unit, _options(sandbox, jitter_honoured=False))))
    runner.start()
    deadline = time.monotonic() + 10
    while not scalar(app_db, "SELECT count(*) FROM sender_leases") and time.monotonic() < deadline:
        time.sleep(0.05)  # started: its checks are done and its lease is live
    held_until = time.monotonic() + 1.5
    while time.monotonic() < held_until:
        assert sandbox.ledger_stats()["accepted"] == 0, "a send went out while the kill switch was on"
        time.sleep(0.05)
    set_sending_paused(app_db, False, "drill over", "tests")
    runner.join(30)
    assert not runner.is_alive() and results[0]["accepted"] > 0 and results[0]["remaining_queued"] == 0
    assert_no_duplicates_and_nothing_lost(app_db, sandbox)


def test_pause_stops_sends_within_2_s_and_resume_continues_without_duplicates(app_db, sandbox):
    import threading
    import time

    from include.delivery.kill_switch import set_sending_paused

    planned_world(app_db, advisors=200, research_digits="")
    with app_db.begin() as c:  # spread the sends over ~8 s
        c.execute(sa.text("UPDATE delivery_plan SET jitter_ms = (advisor_id * 37) % 8000"))
    units = _all_units(app_db)
    results = []

    def run_all():
        from include.delivery.fanout import send_unit

        def one(u):
            results.append(send_unit(app_db, _settings(sandbox), u, _options(sandbox)))
        threads = [threading.Thread(target=one, args=(u,)) for u in units]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    runner = threading.Thread(target=run_all)
    runner.start()
    deadline = time.monotonic() + 30
    while sandbox.ledger_stats()["accepted"] < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    set_sending_paused(app_db, True, "drill: bad content", "tests")
    paused_at = time.monotonic()

    def quiet_for(seconds):
        """The ledger's count once it has not moved for `seconds` (requests in flight at the pause land first)."""
        last, since = sandbox.ledger_stats()["accepted"], time.monotonic()
        while time.monotonic() - since < seconds:
            time.sleep(0.05)
            now = sandbox.ledger_stats()["accepted"]
            if now != last:
                last, since = now, time.monotonic()
        return last

    stopped_at_count = quiet_for(0.5)
    assert time.monotonic() - paused_at <= 2.5, "sends went on for more than 2 s after the pause"
    # Held: over a further 2 s of polling, the count never moves while the switch is on.
    held_until = time.monotonic() + 2.0
    while time.monotonic() < held_until:
        assert sandbox.ledger_stats()["accepted"] == stopped_at_count, "a message was sent while paused"
        time.sleep(0.1)
    queued = scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'queued'")
    assert queued > 0  # rows stay queued
    set_sending_paused(app_db, False, "drill over", "tests")
    runner.join(120)
    assert not runner.is_alive()
    assert time.monotonic() - paused_at >= 2
    assert_no_duplicates_and_nothing_lost(app_db, sandbox)
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'accepted'") == scalar(
        app_db, "SELECT count(*) FROM delivery_plan")


def test_advisor_added_to_dnc_after_planning_is_skipped(dag, app_db, sandbox, airflow_db):
    planned_world(app_db, advisors=100, research_digits="", day=TODAY)
    victim, phone = rows(app_db, "SELECT a.advisor_id, a.phone_e164 FROM delivery_plan p JOIN advisors a "
                                 "USING (advisor_id) ORDER BY 1 LIMIT 1")[0]
    with app_db.begin() as c:
        c.execute(sa.text("INSERT INTO do_not_contact (phone_e164, reason, source) VALUES (:p, 'STOP reply', "
                          "'inbound_opt_out')"), {"p": phone})
    assert dag.test(run_conf=CONF).state == "success"
    status, reason = rows(app_db, "SELECT status, skip_reason FROM deliveries WHERE advisor_id = :a", a=victim)[0]
    assert (status, reason) == ("skipped", "dnc_at_send_time")
    assert sandbox.ledger(to=phone) == []


def test_token_expiry_mid_run_stops_sending_pages_and_keeps_rows_queued(app_db, sandbox):
    from include.delivery.fanout import AuthFailure, send_unit

    planned_world(app_db, advisors=200, research_digits="")
    with app_db.begin() as c:
        c.execute(sa.text("UPDATE delivery_plan SET shard = 0, segment = 'equity', phone_number_id = '100000000000001',"
                          " jitter_ms = (advisor_id * 37) % 6000"))
    unit = _all_units(app_db)[0]
    sandbox.faults(token_expires_in_s=1.5)
    with pytest.raises(AuthFailure):
        send_unit(app_db, _settings(sandbox), unit, _options(sandbox))
    sent = sandbox.ledger_stats()["accepted"]
    assert 0 < sent < 190
    planned = scalar(app_db, "SELECT count(*) FROM delivery_plan")
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'queued'") == planned - sent
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'failed'") == 0
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any(t.startswith("[P0]") and "190" in t for t in posts), posts


def test_a_failed_sender_turns_the_run_red_while_the_sla_check_still_reports(dag, app_db, sandbox, airflow_db):
    """An expired token fails every sender (190 is not retried). The SLA check still runs and posts its P0, and
    fail_run_if_a_task_failed, which watches the senders beside it, makes the run red."""
    planned = planned_world(app_db, advisors=40, research_digits="", day=TODAY)
    sandbox.faults(token_expires_in_s=0)
    dr = dag.test(run_conf=CONF)
    assert dr.state == "failed"
    states = {}
    for ti in dr.get_task_instances():
        states.setdefault(ti.task_id, set()).add(ti.state)
    assert states["send_shard"] == {"failed"} and states["fail_run_if_a_task_failed"] == {"failed"}, states
    assert states["validate_delivery_sla"] == {"success"}, states
    assert sandbox.ledger_stats()["accepted"] == 0
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'queued'") == planned  # nothing lost
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any(t.startswith("[P0]") and "SLA missed" in t for t in posts), posts


def _send_all_with_event_mid_run(engine, sandbox, event, after_sends=30):
    """Run every unit concurrently; fire `event` once `after_sends` messages have been accepted."""
    import threading
    import time

    out = []
    runner = threading.Thread(target=lambda: out.extend(_send_all(engine, sandbox, parallel=True)))
    runner.start()
    deadline = time.monotonic() + 30
    while sandbox.ledger_stats()["accepted"] < after_sends and time.monotonic() < deadline:
        time.sleep(0.02)
    event()
    runner.join(120)
    assert not runner.is_alive()
    return out


def test_number_turning_red_mid_run_rotates_to_hot_spare(app_db, sandbox):
    planned_world(app_db, advisors=200, research_digits="")
    with app_db.begin() as c:
        c.execute(sa.text("UPDATE delivery_plan SET jitter_ms = (advisor_id * 37) % 5000"))
    results = _send_all_with_event_mid_run(app_db, sandbox, lambda: sandbox.admin.post(
        "/_sandbox/numbers/100000000000002", json={"quality_rating": "RED"}).raise_for_status())
    assert scalar(app_db, "SELECT active FROM sending_numbers WHERE phone_number_id = '100000000000002'") is False
    assert scalar(app_db, "SELECT shard FROM sending_numbers WHERE phone_number_id = '100000000000005'") == 1
    used = {n for r in results for n in r["numbers_used"]}
    assert "100000000000005" in used
    by_number = sandbox.ledger_stats()["by_number"]
    assert by_number.get("100000000000005", 0) > 0
    assert_no_duplicates_and_nothing_lost(app_db, sandbox)
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'accepted'") == scalar(
        app_db, "SELECT count(*) FROM delivery_plan")
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any("rotated to hot spare 100000000000005" in t for t in posts), posts


def test_template_paused_mid_run_switches_to_backup_variant(app_db, sandbox):
    planned_world(app_db, advisors=200, research_digits="")
    with app_db.begin() as c:
        c.execute(sa.text("UPDATE delivery_plan SET jitter_ms = (advisor_id * 37) % 5000"))
    from include.content import templates
    from include.whatsapp.client import WhatsAppClient

    with WhatsAppClient(_settings(sandbox)) as client:
        templates.sync_templates(app_db, client)
    _send_all_with_event_mid_run(app_db, sandbox, lambda: sandbox.admin.post(
        "/_sandbox/templates/daily_pack_v1", json={"status": "PAUSED"}).raise_for_status())
    used = {e["template"] for e in sandbox.ledger(limit=100000)}
    assert {"daily_pack_v1", "daily_pack_v2"} <= used
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'accepted'") == scalar(
        app_db, "SELECT count(*) FROM delivery_plan")
    assert_no_duplicates_and_nothing_lost(app_db, sandbox)
    posts = [p["payload"]["text"] for p in sandbox.slack_posts()]
    assert any("switched to daily_pack_v2" in t for t in posts), posts


def test_429_storm_causes_no_permanent_failures_and_throughput_recovers(app_db, sandbox):
    planned_world(app_db, advisors=200, research_digits="")
    sandbox.faults(storm_rate=0.7, storm_for_s=2.0)
    results = _send_all(app_db, sandbox, jitter_honoured=False)
    assert sum(r["throttled"] for r in results) > 0
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'failed'") == 0
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'accepted'") == scalar(
        app_db, "SELECT count(*) FROM delivery_plan")
    assert_no_duplicates_and_nothing_lost(app_db, sandbox)


def test_5xx_and_timeouts_still_reach_99_percent(dag, app_db, sandbox, receiver, airflow_db, monkeypatch):
    planned = planned_world(app_db, advisors=200, research_digits="")
    monkeypatch.setenv("FA_UNKNOWN_RESOLVE_AFTER_S", "3")
    sandbox.faults(error_5xx_rate=0.05, timeout_rate=0.02, timeout_hang_s=12)
    monkeypatch.setenv("FA_SENDER_STALE_SENDING_S", "2")  # settings are read when used: no re-import needed
    monkeypatch.setenv("FA_UNKNOWN_RESOLVE_AFTER_S", "3")
    results = _send_all(app_db, sandbox, jitter_honoured=False)
    accepted = scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'accepted'")
    assert accepted / planned >= 0.99
    assert sum(r["unknown"] for r in results) > 0  # timeouts happened and were reconciled, not resent blindly
    assert_no_duplicates_and_nothing_lost(app_db, sandbox)


def test_a_sender_logs_its_progress_every_few_seconds_and_a_closing_summary(app_db, sandbox):
    """An operator reading a send_shard log sees counts by outcome, the rate against the limit and what is left."""
    import logging

    planned_world(app_db, advisors=120, research_digits="7")  # ...7 is refused for good (131026)
    with app_db.begin() as c:  # spread one unit's sends over ~3 s
        c.execute(sa.text("UPDATE delivery_plan SET shard = 0, segment = 'equity', phone_number_id = '100000000000001',"
                          " jitter_ms = (advisor_id * 37) % 3000"))
    from include.delivery.fanout import send_unit

    class Lines(logging.Handler):  # Airflow's logging setup may not propagate to pytest's caplog
        def __init__(self):
            super().__init__(logging.INFO)
            self.lines: list[str] = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    logger, handler = logging.getLogger("include.delivery.fanout"), Lines()
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        send_unit(app_db, _settings(sandbox), _all_units(app_db)[0], _options(sandbox, progress_log_s=0.5))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = handler.lines
    progress = [m for m in lines if " progress: " in m]
    assert len(progress) >= 3, lines
    assert all("msg/s against a limit of" in m and " left" in m for m in progress)
    final = [m for m in lines if " finished: " in m]
    assert len(final) == 1 and "failed (permanent_recipient 1)" in final[0] and "0 still queued" in final[0], final
