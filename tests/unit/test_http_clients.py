"""Outbound httpx clients share one TLS context per process (include/core/http_clients.py): a default
httpx.Client() builds a new one each time, ~50-60 ms of CPU, and a sender opens a client for every number check."""
import ssl

from include.core import http_clients


def test_the_clients_of_every_integration_share_one_tls_context(monkeypatch):
    from include.whatsapp.client import WhatsAppClient, WhatsAppSettings

    built = []  # every CA bundle loaded, wherever httpx builds its context from
    real = ssl.SSLContext.load_verify_locations

    def counting(self, *args, **kwargs):
        built.append(args or kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    http_clients.tls_context.cache_clear()
    try:
        settings = WhatsAppSettings(base_url="https://graph.example.test", access_token="t", waba_id="1")
        for _ in range(3):
            with WhatsAppClient(settings):
                pass
        with http_clients.client(base_url="https://api.example.test"):
            pass
        assert len(built) == 1, built
        assert isinstance(http_clients.tls_context(), ssl.SSLContext)
        assert http_clients.tls_context().verify_mode == ssl.CERT_REQUIRED and http_clients.tls_context().check_hostname
    finally:
        http_clients.tls_context.cache_clear()


def test_a_caller_may_still_pass_its_own_verify():
    own = ssl.create_default_context()
    http_clients.tls_context.cache_clear()
    with http_clients.client(verify=own):
        pass
    assert http_clients.tls_context.cache_info().currsize == 0  # the shared context was neither built nor used
