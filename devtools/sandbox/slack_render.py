"""The sandbox's Slack page renders posted messages roughly as Slack does, so an alert can be judged as the
on-call engineer will see it: Block Kit blocks (header, section text and two-column fields, context, divider,
buttons) and mrkdwn (*bold*, _italic_, ~strike~, `code`, ```blocks```, <url|links>, :emoji: names, &lt; entities).

References: Slack's "Formatting text for app surfaces" (mrkdwn, escaping &, <, >) and the Block Kit reference
(https://api.slack.com/reference/surfaces/formatting, https://api.slack.com/reference/block-kit/blocks).
"""
from __future__ import annotations

import html
import re

# The emoji names our alerts use, plus common ones; an unknown name stays as Slack shows a missing one: :name:.
EMOJI = {
    "rotating_light": "🚨", "warning": "⚠️", "large_yellow_circle": "🟡", "information_source": "ℹ️",
    "white_check_mark": "✅", "x": "❌", "red_circle": "🔴", "large_orange_circle": "🟠", "large_green_circle": "🟢",
    "pause_button": "⏸️", "arrow_forward": "▶️", "fire": "🔥", "bell": "🔔", "memo": "📝", "clock1": "🕐",
}

_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_CODE_BLOCK = re.compile(r"```(.+?)```", re.S)
_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?!\s)([^~\n]+?)(?<!\s)~(?![\w~])")
_EMOJI = re.compile(r":([a-z0-9_+\-]+):")


def _emoji(text: str) -> str:
    return _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)


def mrkdwn(text: str) -> str:
    """Slack mrkdwn to safe HTML. Code is taken out first (Slack does not format inside it), then links, then the
    inline styles; everything else is escaped."""
    stash: list[str] = []

    def keep(fragment: str) -> str:
        stash.append(fragment)
        return f"\x00{len(stash) - 1}\x00"

    text = _CODE_BLOCK.sub(lambda m: keep(f"<pre>{html.escape(html.unescape(m.group(1)))}</pre>"), text)
    text = _CODE.sub(lambda m: keep(f"<code>{html.escape(html.unescape(m.group(1)))}</code>"), text)

    def link(m: re.Match) -> str:
        target, label = html.unescape(m.group(1)), m.group(2)
        if target.startswith(("@", "#", "!")):  # user, channel and special mentions
            return keep(f"<b>{html.escape(label or target)}</b>")
        shown = html.escape(html.unescape(label)) if label else html.escape(target)
        return keep(f'<a href="{html.escape(target, quote=True)}">{shown}</a>')

    text = _LINK.sub(link, text)
    # What is left is text: Slack's own escapes (&amp; &lt; &gt;) decode, then everything is escaped for HTML.
    out = html.escape(html.unescape(text), quote=False)
    out = _BOLD.sub(r"<b>\1</b>", out)
    out = _ITALIC.sub(r"<i>\1</i>", out)
    out = _STRIKE.sub(r"<s>\1</s>", out)
    out = _emoji(out).replace("\n", "<br>")
    return re.sub("\x00(\\d+)\x00", lambda m: stash[int(m.group(1))], out)


def _text(obj: dict | None) -> str:
    if not isinstance(obj, dict):
        return ""
    if obj.get("type") == "plain_text":
        value = html.escape(obj.get("text", ""), quote=False)
        return _emoji(value) if obj.get("emoji", True) else value
    return mrkdwn(obj.get("text", ""))


def block(b: dict) -> str:
    kind = b.get("type")
    if kind == "header":
        return f'<div class="header">{_text(b.get("text"))}</div>'
    if kind == "divider":
        return "<hr>"
    if kind == "context":
        parts = []
        for el in b.get("elements") or []:
            if el.get("type") == "image":
                alt, src = html.escape(el.get("alt_text", "")), html.escape(el.get("image_url", ""))
                parts.append(f'<img alt="{alt}" src="{src}">')
            else:
                parts.append(_text(el))
        return f'<div class="context">{" ".join(parts)}</div>'
    if kind == "section":
        out = f'<div class="section">{_text(b.get("text"))}</div>' if b.get("text") else ""
        fields = "".join(f"<div>{_text(f)}</div>" for f in b.get("fields") or [])
        return out + (f'<div class="fields">{fields}</div>' if fields else "")
    if kind == "actions":
        buttons = []
        for el in b.get("elements") or []:
            label = _text(el.get("text"))
            style = html.escape(el.get("style", ""))
            if el.get("url"):
                buttons.append(f'<a class="button {style}" href="{html.escape(el["url"], quote=True)}">{label}</a>')
            else:
                buttons.append(f'<span class="button {style}">{label}</span>')
        return f'<div class="actions">{"".join(buttons)}</div>'
    return f'<div class="unknown">(block type {html.escape(str(kind))} not rendered here)</div>'


def message(payload: dict) -> str:
    """One message as Slack shows it: its blocks, or its `text` (mrkdwn) when it has none."""
    blocks = payload.get("blocks") or []
    if blocks:
        return "".join(block(b) for b in blocks)
    return f'<div class="section">{mrkdwn(payload.get("text", ""))}</div>'


STYLE = """
body{font-family:-apple-system,'Segoe UI',Lato,sans-serif;max-width:56em;margin:auto;color:#1d1c1d}
article{border-bottom:1px solid #ddd;padding:.6em 0}
.meta{color:#616061;font-size:.8em}.notification{color:#616061;font-size:.8em;margin-top:.2em}
.header{font-weight:900;font-size:1.15em;margin:.2em 0}
.context{color:#616061;font-size:.85em;margin:.2em 0}
.fields{display:grid;grid-template-columns:1fr 1fr;gap:.3em 1.5em;margin:.3em 0}
.section{margin:.3em 0}
code{background:#f6f6f6;border:1px solid #e0e0e0;border-radius:3px;padding:0 .2em;color:#c01343;font-size:.9em}
pre{background:#f6f6f6;border:1px solid #e0e0e0;border-radius:4px;padding:.5em;white-space:pre-wrap}
a.button,span.button{display:inline-block;border:1px solid #bbb;border-radius:4px;padding:.2em .8em;
margin:.3em .3em 0 0;text-decoration:none;color:#1d1c1d;font-weight:700}
a{color:#1264a3}
"""


def page(posts: list[dict], total: int) -> str:
    items = []
    for post in posts:
        p = post["payload"]
        items.append(f'<article><div class="meta">#{html.escape(post["hook"])} · {html.escape(post["when"])}</div>'
                     f"{message(p)}"
                     f'<div class="notification">notification text: {html.escape(p.get("text", ""))}</div>'
                     "</article>")
    return ("<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='10'>"
            f"<title>Sandbox Slack</title><style>{STYLE}</style></head><body>"
            f"<h1>Sandbox Slack: {total} posts</h1>{''.join(items) or '<p>No alerts yet.</p>'}</body></html>")
