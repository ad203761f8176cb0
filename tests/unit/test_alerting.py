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
    from include.core import config
    from include.content.canary import run_canary

    monkeypatch.setattr(config, "CANARY_PHONES", ())
    result = run_canary(engine=None, settings=None, business_date=None)
    assert result.severity.value == "P1" and "FA_CANARY_PHONES" in result.summary + str(result.items)
