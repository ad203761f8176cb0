"""error_policy.decide, table-driven: no database, no network. What the sender does about each failed send,
and the promise that operators' retries (ops_retry_failed_deliveries) re-send exactly what the sender retries."""
import pytest

from include.delivery.fanout.error_policy import Kind, backoff_s, decide, retryable_code
from include.operations import actions
from include.whatsapp.client import ERROR_CLASSES, WhatsAppError

MAX = 5


def _lo(a, b):
    return a


def _hi(a, b):
    return b


def err(code=None, http_status=400, **kw) -> WhatsAppError:
    return WhatsAppError("boom", code=code, http_status=http_status, **kw)


# (case, error, attempts, kind, refund, throttled, add_to_dnc)
CASES = [
    ("throughput 130429 retried, refunded", err(130429, 429), 1, Kind.RETRY, True, True, False),
    ("throughput 130429 at max attempts fails, still throttles", err(130429, 429), MAX, Kind.FAIL, False, True, False),
    ("pair rate 131056 retried", err(131056), 1, Kind.RETRY, False, False, False),
    ("transient 131000 retried", err(131000, 500), 2, Kind.RETRY, False, False, False),
    ("transient 131000 just below max retried", err(131000, 500), MAX - 1, Kind.RETRY, False, False, False),
    ("transient 131000 at max fails", err(131000, 500), MAX, Kind.FAIL, False, False, False),
    ("5xx without a code retried", err(None, 503), 1, Kind.RETRY, False, False, False),
    ("5xx without a code at max fails", err(None, 503), MAX, Kind.FAIL, False, False, False),
    ("no code, no status (transport) retried", err(None, None), 1, Kind.RETRY, False, False, False),
    ("timeout after the bytes left: unknown", err(None, None, outcome_unknown=True), 1, Kind.UNKNOWN_OUTCOME,
     False, False, False),
    ("unknown outcome wins over a code", err(131000, 500, outcome_unknown=True), MAX, Kind.UNKNOWN_OUTCOME,
     False, False, False),
    ("token expired 190 stops the run", err(190, 401), 1, Kind.STOP_RUN, True, False, False),
    ("account locked 131031 stops the run", err(131031, 403), MAX, Kind.STOP_RUN, True, False, False),
    ("policy 368 rotates the number", err(368, 403), 1, Kind.ROTATE_NUMBER, True, False, False),
    ("number unregistered 133010 rotates", err(133010), 1, Kind.ROTATE_NUMBER, True, False, False),
    ("template paused 132015 switches", err(132015), 1, Kind.SWITCH_TEMPLATE, True, False, False),
    ("template disabled 132016 switches", err(132016), 1, Kind.SWITCH_TEMPLATE, True, False, False),
    ("template missing 132001 switches", err(132001, 404), 1, Kind.SWITCH_TEMPLATE, True, False, False),
    ("template param count 132000 fails", err(132000), 1, Kind.FAIL, False, False, False),
    ("undeliverable 131026 fails", err(131026), 1, Kind.FAIL, False, False, False),
    ("stopped marketing 131050 fails and proposes DNC", err(131050), 1, Kind.FAIL, False, False, True),
    ("invalid parameter 100 fails", err(100), 1, Kind.FAIL, False, False, False),
    ("unknown code with a 4xx fails", err(999999, 400), 1, Kind.FAIL, False, False, False),
    ("unknown code with a 5xx is retried (the status's one use)", err(999999, 502), 1, Kind.RETRY,
     False, False, False),
    ("unknown code Graph calls transient is retried", err(999999, 400, is_transient=True), 1, Kind.RETRY,
     False, False, False),
]


@pytest.mark.parametrize("case, error, attempts, kind, refund, throttled, dnc", CASES, ids=[c[0] for c in CASES])
def test_decide(case, error, attempts, kind, refund, throttled, dnc):
    action = decide(error, attempts, MAX, uniform=_lo)
    assert (action.kind, action.refund, action.throttled, action.add_to_dnc) == (kind, refund, throttled, dnc), case
    if kind is Kind.RETRY:
        assert action.delay_s == backoff_s(error, attempts, uniform=_lo) > 0
    else:
        assert action.delay_s == 0.0


@pytest.mark.parametrize("error, attempt, low, high", [
    (err(131056), 1, 4.0, 4.0), (err(131056), 2, 16.0, 16.0), (err(131056), 0, 4.0, 4.0),
    (err(130429, 429), 1, 0.2, 1.0), (err(130429, 429), 4, 0.2, 1.0),
    (err(131000, 500), 1, 0.4, 0.6), (err(131000, 500), 3, 1.6, 2.4), (err(131000, 500), 20, 24.0, 36.0),
])
def test_backoff_bounds(error, attempt, low, high):
    assert backoff_s(error, attempt, uniform=_lo) == pytest.approx(low)
    assert backoff_s(error, attempt, uniform=_hi) == pytest.approx(high)
    assert low <= backoff_s(error, attempt) <= high  # the real randomness stays within them


def test_decide_is_pure():
    e = err(131000, 500)
    assert decide(e, 1, MAX, uniform=_hi) == decide(e, 1, MAX, uniform=_hi)


def _stored_code(e: WhatsAppError):
    """What the sender writes to deliveries.error_code, which ops retry reads back."""
    return e.code if e.code is not None else e.http_status


AGREEMENT = ([err(code, 400) for code in ERROR_CLASSES if code >= 600]  # Graph codes, with a non-5xx status
             + [err(None, status) for status in (500, 502, 503, 504)]  # HTTP status only, no Graph code
             + [err(None, 429)]
             + [err(999999, 400), err(132099, 400), err(1, 400)])


@pytest.mark.parametrize("error", AGREEMENT, ids=lambda e: str(_stored_code(e)))
def test_ops_retry_and_the_sender_agree_on_what_is_retryable(error):
    sender_retries = decide(error, 1, MAX, uniform=_lo).kind is Kind.RETRY
    assert retryable_code(_stored_code(error)) is sender_retries
    assert actions.retryable_code is retryable_code  # ops asks the same function, not a copy of the rule


@pytest.mark.parametrize("code", sorted(c for c in ERROR_CLASSES if c < 600))
def test_small_codes_agree_too(code):
    """Codes below 600 (Graph's 0-368 and the stored HTTP statuses): the sender's decision for that code
    matches ops whatever the response's status was."""
    sender_retries = decide(err(code, 400), 1, MAX, uniform=_lo).kind is Kind.RETRY
    assert retryable_code(code) is sender_retries


def test_the_one_deliberate_difference_unknown_code_with_a_5xx():
    """Within a run the sender retries an unlisted code that came with a 5xx or Graph's is_transient (the
    outcome is fresh); ops never re-sends a stored unlisted code, which could be a permanent failure."""
    for error in (err(999999, 502), err(999999, 400, is_transient=True)):
        assert decide(error, 1, MAX, uniform=_lo).kind is Kind.RETRY
        assert retryable_code(_stored_code(error)) is False
