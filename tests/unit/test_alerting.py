"""Alerts reach the sandbox's Slack endpoint over real HTTP, in Block Kit, with run context."""
import json
import os
from types import SimpleNamespace

from include.core import alerting
from include.core.alerting import Alert, RunRef, Severity


def _ctx():
    ti = SimpleNamespace(dag_id="delivery_fanout", task_id="send_shard", run_id="scheduled__2026-11-23T00:30:00+00:00",
                         map_index=3, try_number=2)
    return {"ti": ti, "dag_run": SimpleNamespace(dag_id="delivery_fanout", run_id=ti.run_id),
            "exception": RuntimeError("token expired")}


def test_alert_posts_block_kit_with_severity_run_link_and_facts(sandbox):
    a = alerting.alert(Severity.P0, "Failure rate 3.1% over 2 min", {"failed": 31, "attempted": 1000},
                       context=_ctx(), details=["131026 x 20", "131000 x 11"])
    posts = sandbox.slack_posts()
    assert len(posts) == 1
    payload = posts[0]["payload"]
    assert payload["text"].startswith("[P0] [delivery_fanout.send_shard]")
    blob = str(payload["blocks"])
    for expected in ("P0", "delivery_fanout", "send_shard", "paging on-call", "failed", "1000", "131026 x 20"):
        assert expected in blob
    button = [b for b in payload["blocks"] if b["type"] == "actions"][0]["elements"][0]
    assert button["url"] == a.source.url
    assert "/dags/delivery_fanout/runs/scheduled__2026-11-23T00%3A30%3A00%2B00%3A00/tasks/send_shard/mapped/3" \
        in button["url"]


def test_failure_callback_posts_the_exception(sandbox):
    alerting.on_task_failure(_ctx())
    payload = sandbox.slack_posts()[0]["payload"]
    assert payload["text"].startswith("[P1]")
    assert "RuntimeError: token expired" in str(payload["blocks"])


def test_operator_input_error_is_logged_for_the_operator_not_posted(sandbox, caplog):
    import logging

    import pytest

    from include.core.dagkit import OperatorInputError, fail_fast_on_bad_input

    with pytest.raises(OperatorInputError) as raised, fail_fast_on_bad_input():
        raise ValueError("business_date 2026-13-01 is not a date")
    from airflow.sdk.exceptions import AirflowFailException

    assert isinstance(raised.value, AirflowFailException)  # still fails at once, without retries
    ctx = {**_ctx(), "exception": raised.value}
    with caplog.at_level(logging.INFO, logger="include.core.alerting"):
        alerting.on_task_failure(ctx)
    assert sandbox.slack_posts() == []
    refused = [r for r in caplog.records if "OPERATOR INPUT REFUSED" in r.getMessage()]
    assert refused and refused[0].levelno == logging.WARNING
    assert "bad parameter: business_date 2026-13-01 is not a date" in refused[0].getMessage()


def test_alert_log_level_follows_severity(monkeypatch, caplog):
    import logging

    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS",
                       '{"conn_type": "slackwebhook", "password": "http://127.0.0.1:9/slack/webhook/x"}')
    with caplog.at_level(logging.INFO, logger="include.core.alerting"):
        for sev in Severity:
            alerting.post(Alert(sev, f"level check {sev.value}"))
    levels = {r.getMessage().split("]")[0].removeprefix("ALERT ["): r.levelno
              for r in caplog.records if r.getMessage().startswith("ALERT")}
    assert levels == {"P0": logging.WARNING, "P1": logging.WARNING, "P2": logging.WARNING, "info": logging.INFO}


def test_unreachable_slack_never_raises(monkeypatch, sandbox):
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS",
                       '{"conn_type": "slackwebhook", "password": "http://127.0.0.1:9/slack/webhook/x"}')
    assert alerting.post(Alert(Severity.P1, "x")) is False


def test_worst_severity_and_paging():
    assert alerting.worst([Severity.INFO, Severity.P2, Severity.P1]) is Severity.P1
    assert alerting.worst([]) is Severity.INFO
    assert Severity.P0.pages and not Severity.P1.pages
    assert RunRef().url is None


def _closed_port_slack() -> str:
    from tests.support import free_port

    return json.dumps({"conn_type": "slackwebhook", "password": f"http://127.0.0.1:{free_port()}/slack/webhook/x"})


def test_post_once_records_an_alert_only_after_slack_accepted_it(app_db, sandbox, monkeypatch):
    import datetime as dt

    from tests.world import scalar

    day = dt.date(2026, 11, 23)
    working = os.environ["AIRFLOW_CONN_SLACK_ALERTS"]
    p0 = Alert(Severity.P0, "Failure rate 3.1% over 2 min", {"failed": 31})
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", _closed_port_slack())  # Slack is down
    assert alerting.post_once(app_db, day, "failure-rate", p0) is False
    assert scalar(app_db, "SELECT count(*) FROM alerts_raised") == 0     # not recorded as raised
    assert sandbox.slack_posts() == []
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", working)             # Slack is back
    assert alerting.post_once(app_db, day, "failure-rate", p0) is True   # so the P0 is posted now
    posts = sandbox.slack_posts()
    assert len(posts) == 1 and posts[0]["payload"]["text"].startswith("[P0]")
    assert alerting.post_once(app_db, day, "failure-rate", p0) is False  # and only once
    assert len(sandbox.slack_posts()) == 1
    assert scalar(app_db, "SELECT count(*) FROM alerts_raised WHERE alert_key = 'failure-rate'") == 1


def test_post_once_concurrent_callers_post_at_most_once(app_db, sandbox):
    import datetime as dt
    from concurrent.futures import ThreadPoolExecutor

    a = Alert(Severity.P0, "No hot spare left for shard 2")
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda _: alerting.post_once(app_db, dt.date(2026, 11, 23), "no-spare:2", a), range(6)))
    assert got.count(True) == 1
    assert len(sandbox.slack_posts()) == 1


def test_no_canary_list_means_no_canary_and_a_p1_that_says_why(monkeypatch):
    """Production names its canary list; nobody is messaged on a default."""
    from include.content.canary import run_canary

    monkeypatch.setenv("FA_CANARY_PHONES", "")  # empty means the default: no canary list
    result = run_canary(engine=None, settings=None, business_date=None)
    assert result.severity.value == "P1" and "FA_CANARY_PHONES" in result.summary + str(result.items)


def _assert_within_slack_limits(blocks: list[dict]) -> None:
    """Slack's Block Kit limits, checked on the posted JSON (and re-validated by slack_sdk's models)."""
    from slack_sdk.models.blocks import Block

    assert 0 < len(blocks) <= 50
    for b in blocks:
        Block.parse(b).validate_json()  # raises SlackObjectFormationError if slack_sdk rejects it
        if b["type"] == "header":
            assert b["text"]["type"] == "plain_text" and 0 < len(b["text"]["text"]) <= 150
        if b["type"] == "section":
            assert "text" in b or "fields" in b
            assert len(b.get("text", {}).get("text", "")) <= 3000
            assert len(b.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in b.get("fields", []))
        if b["type"] == "context":
            assert all(len(e["text"]) <= 3000 for e in b["elements"])
    json.dumps(blocks)


def test_short_alert_blocks_are_unchanged_block_kit():
    a = Alert(Severity.P2, "Late start", {"shard": 2}, RunRef("delivery_fanout", "send_shard", "r1"), ["one"])
    blocks = a.blocks()
    assert [b["type"] for b in blocks] == ["header", "context", "section", "section", "actions"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": ":large_yellow_circle: P2: Late start"}
    assert blocks[1]["elements"] == [{"type": "mrkdwn", "text": "*dag:* `delivery_fanout` · *task:* `send_shard` · "
                                                                 "*run:* `r1`"}]
    assert blocks[2]["fields"] == [{"type": "mrkdwn", "text": "*shard*\n2"}]
    assert blocks[3]["text"] == {"type": "mrkdwn", "text": "• one"}
    _assert_within_slack_limits(blocks)


def test_overlong_title_is_cut_to_the_header_limit():
    a = Alert(Severity.P0, "Failure rate " + "x" * 500)
    blocks = a.blocks()
    header = blocks[0]["text"]["text"]
    assert len(header) == 150 and header.startswith(":rotating_light: P0: Failure rate x") and header.endswith("…")
    assert a.text().endswith("x" * 500)  # the plain-text fallback keeps the whole title
    _assert_within_slack_limits(blocks)


def test_overlong_and_too_many_facts_stay_within_section_limits():
    facts = {f"fact {i}": "v" * 5000 for i in range(30)}
    blocks = Alert(Severity.P1, "many facts", facts).blocks()
    fields = blocks[1]["fields"]
    assert len(fields) == 10 and fields[0]["text"].startswith("*fact 0*\nvvv") and fields[0]["text"].endswith("…")
    rest = blocks[2]["text"]["text"]
    assert rest.startswith("*fact 10:* v") and rest.endswith("…\n… and 19 more")  # cut, and the rest counted
    _assert_within_slack_limits(blocks)


def test_long_detail_list_keeps_whole_lines_and_says_how_many_more():
    details = [f"advisor {i}: " + "d" * 290 for i in range(500)]
    blocks = Alert(Severity.P1, "many details", details=details).blocks()
    body = blocks[-1]["text"]["text"]
    lines = body.split("\n")
    shown = lines[:-1]
    assert shown and all(line.startswith("• advisor ") and line.endswith("d" * 290) for line in shown)
    assert lines[-1] == f"… and {500 - len(shown)} more"
    _assert_within_slack_limits(blocks)
    # one detail longer than a whole section is cut, not rejected
    blocks = Alert(Severity.P1, "huge detail", details=["z" * 10_000, "next"]).blocks()
    assert blocks[-1]["text"]["text"].endswith("…\n… and 1 more")
    _assert_within_slack_limits(blocks)
    # 20 short details are listed in full, the 21st on is counted
    blocks = Alert(Severity.P1, "21 details", details=[str(i) for i in range(21)]).blocks()
    assert blocks[-1]["text"]["text"].split("\n")[-2:] == ["• 19", "… and 1 more"]


def test_overlong_run_context_and_url_stay_valid():
    ref = RunRef("dag", "task", "manual__" + "r" * 4000, map_index=1)
    blocks = Alert(Severity.P0, "x", {"a": 1}, ref).blocks()
    assert "actions" not in [b["type"] for b in blocks]  # a cut URL would lead nowhere
    assert blocks[1]["elements"][0]["text"].endswith("…")
    _assert_within_slack_limits(blocks)
