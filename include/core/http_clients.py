"""Outbound HTTP clients (httpx) for the project's integrations: WhatsApp checks, PagerDuty, Airflow's REST API.

`httpx.Client()` builds a new TLS context each time by default, loading the CA bundle: ~50-60 ms of CPU per client,
measured here. A sender checks its number's quality every 10 s with a fresh client, and each of the day's tasks
opens several: on 2 cores at 06:00 that was CPU the sends needed. Every client here shares one context per process,
verifying exactly as httpx's default does (certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set)."""
from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """This process's TLS context (an SSLContext may be shared by many connections and threads)."""
    return httpx.create_ssl_context()


def client(**kwargs: Any) -> httpx.Client:
    """`httpx.Client(**kwargs)` with the shared TLS context, unless the caller passes its own `verify`."""
    if "verify" not in kwargs:  # not setdefault: that would build the shared context even when it goes unused
        kwargs["verify"] = tls_context()
    return httpx.Client(**kwargs)
