"""Delay-notice emails through Airflow's SMTP path: the SMTP provider's `SmtpHook` on the `advisor_email` connection
(config.ADVISOR_EMAIL_CONN_ID). The dev stack and the tests point that connection at the sandbox's SMTP sink;
production points it at the real relay (host, port, login/password, and in its extra `from_email`, plus
`disable_ssl` / `disable_tls` as the relay needs).

One SMTP session per run, one message per notice, each with its deterministic Message-ID header. The hook's own
retry loop (`retry_limit` in the connection's extra, default 5) would resend within one call; our retries are the
outbox's (a failed row is retried by the next run), so the connection should set `"retry_limit": 0`.
"""
from __future__ import annotations

from include.core import config


class SmtpMailer:
    """A context manager holding one logged-in `SmtpHook` session; `send` sends one HTML email."""

    def __init__(self, conn_id: str = config.ADVISOR_EMAIL_CONN_ID):
        self.conn_id = conn_id
        self._hook = None

    def __enter__(self) -> SmtpMailer:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        hook = SmtpHook(smtp_conn_id=self.conn_id)
        self._hook = hook.__enter__()   # connects and logs in; raises when the relay is unreachable
        return self

    def send(self, to: str, subject: str, html: str, message_id: str) -> None:
        if self._hook is None:
            raise RuntimeError("SmtpMailer.send outside its `with` block")
        self._hook.send_email_smtp(to=to, subject=subject, html_content=html, mime_subtype="alternative",
                                   custom_headers={"Message-ID": message_id})

    def __exit__(self, *exc) -> None:
        if self._hook is not None:
            self._hook.__exit__(None, None, None)
            self._hook = None
