"""The sandbox's Slack page shows an alert the way Slack would: Block Kit blocks and mrkdwn, escaped."""
import pytest

from devtools.sandbox.slack_render import message, mrkdwn
from include.core.alerting import Alert, RunRef, Severity


@pytest.mark.parametrize("text, expected", [
    ("*bold* and _italic_ and ~gone~", "<b>bold</b> and <i>italic</i> and <s>gone</s>"),
    ("run `send_shard` now", "run <code>send_shard</code> now"),
    ("```a *b* <c>```", "<pre>a *b* &lt;c&gt;</pre>"),
    ("<https://x.example/run?a=1&b=2|Open run>", '<a href="https://x.example/run?a=1&amp;b=2">Open run</a>'),
    ("<https://x.example/>", '<a href="https://x.example/">https://x.example/</a>'),
    (":rotating_light: P0", "🚨 P0"),
    (":no_such_emoji:", ":no_such_emoji:"),
    ("a &lt;b&gt; &amp; c", "a &lt;b&gt; &amp; c"),        # Slack's own escapes show as the characters
    ("<script>alert(1)</script>", '<a href="script">script</a>alert(1)<a href="/script">/script</a>'),
    ("line one\nline two", "line one<br>line two"),
    ("snake_case_name stays", "snake_case_name stays"),      # no italics inside words
    ("2 * 3 * 4", "2 * 3 * 4"),                               # loose asterisks are not bold
])
def test_mrkdwn(text, expected):
    assert mrkdwn(text) == expected


def test_an_alert_renders_header_context_fields_details_and_button():
    alert = Alert(Severity.P1, "Template daily_pack_v1 is not usable: switched to daily_pack_v2",
                  {"language": "en", "why": "PAUSED (template status webhook)", "rows switched": 120},
                  RunRef("delivery_fanout", "send_shard", "manual__2026-12-01", 3), ["first detail", "second <b>"])
    html = message({"text": alert.text(), "blocks": alert.blocks()})
    assert '<div class="header">⚠️ P1: Template daily_pack_v1 is not usable' in html
    assert "<b>dag:</b> <code>delivery_fanout</code>" in html
    assert '<div class="fields"><div><b>language</b><br>en</div>' in html
    assert "• first detail<br>• second &lt;b&gt;" in html  # alerting escapes data; the page shows it as typed
    assert '<a class="button ' in html and "Open run in Airflow" in html
