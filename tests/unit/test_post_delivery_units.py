"""KPIs against a hand-computed fixture, one failing case per data-quality expectation, the receiver's
parsing and opt-out keywords, and checkpoint selection. No database, no network."""
import datetime as dt

import pandas as pd
import pytest

from include.reporting import data_quality, kpis
from include.reporting.post_delivery_report import checkpoint_for
from include.whatsapp.webhook_receiver import opt_out_keyword, parse_events, signature_ok

T0 = pd.Timestamp("2026-11-23T00:30:00Z")  # 06:00 IST


def _row(advisor_id, segment, number, status, accepted_s=None, delivered_s=None, read_s=None, error_code=None,
         skip_reason=None, latency_ms=None):
    def at(s):
        return T0 + pd.Timedelta(seconds=s) if s is not None else pd.NaT

    return {"business_date": dt.date(2026, 11, 23), "advisor_id": advisor_id, "external_ref": f"ADV{advisor_id}",
            "segment": segment, "shard": 0, "phone_number_id": number, "content_source": "approved",
            "template_name": "daily_pack_v1", "status": status, "attempts": 1, "wamid": None,
            "error_code": error_code, "error_title": "x" if error_code else None, "skip_reason": skip_reason,
            "api_latency_ms": latency_ms, "queued_at": T0, "accepted_at": at(accepted_s), "sent_at": pd.NaT,
            "delivered_at": at(delivered_s), "read_at": at(read_s), "failed_at": pd.NaT}


def fixture():
    """10 planned advisors, computed by hand below."""
    rows = [
        _row(1, "equity", "A", "delivered", 0, 2),
        _row(2, "equity", "A", "read", 1, 5, 30),
        _row(3, "equity", "B", "delivered", 2, 400),          # delivered, but after 5 minutes
        _row(4, "wealth", "B", "failed", 3, error_code=131026),
        _row(5, "wealth", "B", "skipped", skip_reason="dnc_at_send_time"),
        _row(6, "wealth", "A", "accepted", 4),                 # no final status yet
        _row(7, "insurance", "A", "delivered", 5, 15),
        _row(8, "insurance", "B", "failed", error_code=131049),  # rejected by the API, never accepted
        _row(9, "mutual_fund", "A", "read", 6, 16, 20),
        _row(10, "mutual_fund", "B", "delivered", 7, 47),
    ]
    df = pd.DataFrame(rows)
    for c in ("queued_at", "accepted_at", "sent_at", "delivered_at", "read_at", "failed_at"):
        df[c] = pd.to_datetime(df[c], utc=True)
    attempts = pd.DataFrame({"at": [T0] * 9, "phone_number_id": list("AABBABAAB"),
                             "outcome": ["accepted"] * 9, "error_code": [None] * 9,
                             "latency_ms": [10, 20, 30, 40, 50, 60, 70, 80, 1000]})
    return df, attempts


def test_kpis_match_the_hand_computed_fixture():
    df, attempts = fixture()
    k = kpis.compute(df, attempts)
    o = k["overall"]
    # accepted: 1,2,3,4(failed later? no: status failed) -> statuses accepted/sent/delivered/read only: 1,2,3,6,7,9,10
    assert (o["planned"], o["accepted"], o["delivered"], o["read"], o["failed"], o["skipped"]) == (10, 7, 6, 2, 2, 1)
    assert o["failed_by_error_code"] == {"131026": 1, "131049": 1}
    assert o["skipped_by_reason"] == {"dnc_at_send_time": 1}
    assert o["unresolved"] == 0
    assert o["delivery_rate"] == round(6 / 9, 4)          # delivered / (planned - skipped)
    # latencies (s) of delivered: 2, 4, 398, 10, 10, 40 -> sorted 2,4,10,10,40,398
    assert o["latency_p50_s"] == 10.0
    assert o["latency_p95_s"] == round(float(pd.Series([2, 4, 10, 10, 40, 398]).quantile(0.95)), 2)
    assert o["delivered_within_5min_ratio"] == round(5 / 7, 4)   # of accepted
    assert o["slo_delivered_within_5min_met"] is False
    assert o["api_p95_latency_ms"] == round(float(pd.Series([10, 20, 30, 40, 50, 60, 70, 80, 1000]).quantile(0.95)), 2)
    assert k["by_segment"]["equity"]["delivery_rate"] == 1.0
    assert k["by_segment"]["wealth"]["delivery_rate"] == 0.0 and k["by_segment"]["wealth"]["skipped"] == 1
    assert k["by_number"]["A"]["planned"] == 5 and k["by_number"]["B"]["planned"] == 5
    assert k["by_number"]["A"]["api_attempts"] == 5


# -- data quality: every expectation fails on injected bad data ------------------------------------------
def good_frame(n=6):
    now = pd.Timestamp("2026-11-23T00:30:00Z")
    return pd.DataFrame([{
        "advisor_id": i, "planned": True, "outcome_rows": 1, "accepted_sends": 1, "status": "delivered",
        "wamid": f"wamid.{i}", "error_code": None, "skip_reason": None, "accepted_at": now,
        "delivered_at": now + pd.Timedelta(seconds=3), "read_at": None, "accepted_to_delivered_s": 3.0,
        "delivered_to_read_s": None, "sent_to_dnc_or_opted_out": False, "dnc_source": None} for i in range(1, n + 1)])


def run(df, rate=0.99):
    return {r["expectation"]: r for r in data_quality.validate(data_quality.frames_from(df, rate))["results"]}


def test_clean_outcomes_pass_every_expectation():
    results = run(good_frame())
    assert len(results) == 10 and all(r["success"] for r in results.values())


def _inject(name):
    df = good_frame()
    if name == "every planned advisor has exactly one outcome row":
        df.loc[2, ["outcome_rows", "status", "wamid"]] = [0, None, None]
    elif name == "every outcome row belongs to the plan":
        df.loc[2, "planned"] = False
    elif name == "statuses are in the allowed set":
        df.loc[2, "status"] = "queued"
    elif name == "wamids are unique":
        df.loc[2, "wamid"] = df.loc[1, "wamid"]
    elif name == "no advisor received more than one send per day":
        df.loc[2, "accepted_sends"] = 2
    elif name == "timestamps ordered: accepted <= delivered":
        df.loc[2, "accepted_to_delivered_s"] = -120.0
    elif name == "timestamps ordered: delivered <= read":
        df.loc[2, "delivered_to_read_s"] = -60.0
    elif name == "an error code is present if and only if the message failed":
        df.loc[2, "error_code"] = 131026
    elif name == "DNC and opted-out advisors have zero sends":
        df.loc[2, ["sent_to_dnc_or_opted_out", "dnc_source"]] = [True, "inbound_opt_out"]
    return df


@pytest.mark.parametrize("name", [c.name for c in data_quality.checks() if c.frame == "outcomes"])
def test_each_outcome_expectation_fails_on_injected_bad_data_and_names_the_row(name):
    results = run(_inject(name))
    failed = [n for n, r in results.items() if not r["success"]]
    assert failed == [name]
    samples = results[name]["samples"]
    assert samples and "3" in {s["advisor_id"] for s in samples}  # the injected row (advisor 3) is shown


def test_delivery_rate_expectation_fails_below_the_threshold():
    results = run(good_frame(), rate=0.91)
    assert [n for n, r in results.items() if not r["success"]] == ["delivery rate is at least 95%"]


# -- receiver parsing ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("STOP", "stop"), ("stop", "stop"), (" Stop. ", "stop"), ("STOP please", "stop"), ("Unsubscribe", "unsubscribe"),
    ("stop all", "stop all"), ("रोकें", "रोकें"), ("बंद करें", "बंद करें"), ("बंद", "बंद"),
    ("Please don't stop sending these", None), ("Thanks for the update", None), ("", None), (None, None),
])
def test_opt_out_keywords_in_english_and_hindi(text, expected):
    assert opt_out_keyword(text) == expected


def test_signature_check():
    import hashlib
    import hmac

    body = b'{"a":1}'
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature_ok(body, good, "s3cret")
    assert not signature_ok(body, good, "other") and not signature_ok(body, None, "s3cret")
    assert not signature_ok(body + b" ", good, "s3cret") and not signature_ok(body, "sha1=abc", "s3cret")


def test_parse_events_flattens_statuses_messages_and_errors():
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "waba", "changes": [{"value": {
        "statuses": [{"id": "wamid.1", "status": "read", "timestamp": "1763870000", "recipient_id": "919000000001",
                      "biz_opaque_callback_data": "2026-11-23:7"}],
        "messages": [{"from": "919000000002", "id": "wamid.in1", "timestamp": "1763870001", "type": "button",
                      "button": {"text": "Stop promotions", "payload": "STOP"}}],
        "errors": [{"code": 131000, "title": "Something went wrong"}]}}]}]}
    events = parse_events(payload)
    assert [(e.kind, e.dedupe_key) for e in events] == [
        ("status", "s:wamid.1:read:1763870000"), ("message", "m:wamid.in1"), ("error", events[2].dedupe_key)]
    assert events[0].biz_opaque == "2026-11-23:7" and events[0].from_phone == "+919000000001"
    assert events[1].opt_out == "stop" and events[1].from_phone == "+919000000002"
    with pytest.raises(ValueError):
        parse_events({"object": "page"})


@pytest.mark.parametrize("hhmm,expected", [((6, 5), "06:05"), ((6, 14), "06:05"), ((6, 15), "06:15"),
                                           ((6, 29), "06:15"), ((6, 30), "06:30"), ((9, 0), "06:30"),
                                           ((5, 0), "06:05")])
def test_checkpoint_follows_the_run_time(hhmm, expected):
    assert checkpoint_for(dt.time(*hhmm)) == expected
