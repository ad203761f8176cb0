"""Alerts reach the sandbox's Slack endpoint over real HTTP, in Block Kit, with run context."""
from types import SimpleNamespace

from include import alerting
from include.alerting import Alert, RunRef, Severity


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


def test_unreachable_slack_never_raises(monkeypatch, sandbox):
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS",
                       '{"conn_type": "slackwebhook", "password": "http://127.0.0.1:9/slack/webhook/x"}')
    assert alerting.post(Alert(Severity.P1, "x")) is False


def test_worst_severity_and_paging():
    assert alerting.worst([Severity.INFO, Severity.P2, Severity.P1]) is Severity.P1
    assert alerting.worst([]) is Severity.INFO
    assert Severity.P0.pages and not Severity.P1.pages
    assert RunRef().url is None
