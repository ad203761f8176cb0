"""ops_retry_failed_deliveries re-sends only what the explicit table (include/whatsapp.ERROR_CLASSES)
classes as retryable; a code that is not in the table is unknown and is never re-sent."""
import pytest

from include.operations.actions import retry_failed_deliveries, retryable_code
from include.whatsapp.client import ERROR_CLASSES, RETRYABLE, ErrorClass
from tests.world import DAY, failed_deliveries, rows, scalar, seed

RETRIED = [
    (130429, "rate limit hit"), (80007, "WABA rate limit"), (4, "too many calls"), (131056, "pair rate limit"),
    (131000, "something went wrong"), (131016, "service unavailable"), (2, "API service temporarily down"),
    (131057, "account in maintenance mode"), (133004, "server temporarily unavailable"),
    (429, "HTTP 429 without a Graph code"), (500, "HTTP 500 without a Graph code"),
    (502, "HTTP 502 without a Graph code"), (503, "HTTP 503 without a Graph code"),
    (504, "HTTP 504 without a Graph code"),
]
NOT_RETRIED = [
    (131031, "business account locked"), (133010, "phone number not registered"),
    (130472, "user in the marketing experiment"), (130497, "country restricted"),
    (132000, "template param count"), (132001, "template missing"), (132005, "template text too long"),
    (132007, "template format policy"), (132012, "template parameter format"), (132015, "template paused"),
    (132016, "template disabled"), (132068, "flow blocked"), (132069, "flow throttled"),
    (131026, "undeliverable"), (131047, "re-engagement"), (131049, "Meta chose not to deliver"),
    (131050, "stopped marketing"), (131021, "recipient is sender"), (368, "policy block"),
    (131048, "spam rate limit"), (190, "token expired"), (0, "auth exception"), (10, "permission denied"),
    (131005, "access denied"), (131042, "payment issue"), (100, "invalid parameter"),
    (131008, "missing parameter"), (131009, "bad parameter value"), (131053, "media upload error"),
    (131037, "display name approval"), (133005, "two-step PIN mismatch"),
]
UNKNOWN = [(999999, "made up"), (1, "API Unknown: ambiguous, not classed"), (132099, "unlisted template code"),
           (131999, "unlisted 131xxx"), (133999, "unlisted 133xxx"), (505, "HTTP 505"), (520, "HTTP 520"),
           (400, "HTTP 400 without a Graph code"), (None, "no code at all")]


@pytest.mark.parametrize("code, why", RETRIED)
def test_retryable_codes_are_retried(code, why):
    assert ERROR_CLASSES[code] in RETRYABLE
    assert retryable_code(code) is True, why


@pytest.mark.parametrize("code, why", NOT_RETRIED)
def test_permanent_codes_are_classified_and_not_retried(code, why):
    assert code in ERROR_CLASSES, f"{code} ({why}) must be in the explicit table"
    assert ERROR_CLASSES[code] not in RETRYABLE
    assert retryable_code(code) is False, why


@pytest.mark.parametrize("code, why", UNKNOWN)
def test_unknown_codes_are_never_retried(code, why):
    assert code not in ERROR_CLASSES
    assert retryable_code(code) is False, why


def test_table_classes_of_the_codes_the_review_named():
    assert ERROR_CLASSES[131031] is ErrorClass.AUTH            # the whole account is locked: stop and page
    assert ERROR_CLASSES[133010] is ErrorClass.POLICY          # that number is unusable: rotate
    assert ERROR_CLASSES[130472] is ErrorClass.PERMANENT_RECIPIENT
    assert all(ERROR_CLASSES[c] is ErrorClass.TEMPLATE for c in (132000, 132001, 132005, 132007, 132012, 132015,
                                                                 132016, 132068, 132069))


def test_retry_requeues_only_table_retryable_codes_and_reports_unknown_ones(app_db):
    seed(app_db, advisors=12)
    codes = [131031, 133010, 130472, 132012, 999999, 131000, 503, 130429]
    failed_deliveries(app_db, DAY, codes)
    out = retry_failed_deliveries(app_db, DAY, "storm is over", "ops@test")
    assert out["requeued"] == 3 and out["retryable_codes"] == [503, 130429, 131000]
    assert out["unknown_codes_kept"] == ["999999"]
    still = {r.error_code for r in rows(app_db, "SELECT error_code FROM deliveries WHERE status = 'failed'")}
    assert still == {131031, 133010, 130472, 132012, 999999}
    assert scalar(app_db, "SELECT count(*) FROM deliveries WHERE status = 'queued'") == 3
