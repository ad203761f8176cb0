"""Test worlds built on the real demo-world generator and the real schema."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from include.content import readiness as content

from devtools import demo_world

from include.delivery import planning

DAY = dt.date(2026, 11, 23)


def seed(engine, advisors: int = 200, day: dt.date = DAY, seed: int = 42):
    return demo_world.seed_world(engine, advisors=advisors, seed=seed, today=day)


def make_ready(engine, day: dt.date = DAY, approve_pending: bool = True) -> None:
    """Approve the day's packs and give every eligible advisor a QC-passed render of their segment pack,
    as the nightly window would have."""
    with engine.begin() as conn:
        if approve_pending:
            conn.execute(sa.text("UPDATE content_packs SET status = 'approved', approved_by = 'tests', approved_at = now()"
                                 " WHERE business_date = :d AND status = 'pending'"), {"d": day})
        conn.execute(sa.text("""
            INSERT INTO renders (business_date, advisor_id, pack_id, input_sha256, storage_uri, content_sha256,
                                 bytes, width, height, mime_type, qc_status, qc_checked_at)
            SELECT :d, a.advisor_id, p.pack_id, md5(a.advisor_id::text) || md5(p.pack_id::text),
                   'file:///renders/' || a.advisor_id || '.jpg', md5(a.advisor_id::text) || md5('c'),
                   120000, 1080, 1080, 'image/jpeg', 'passed', now()
            FROM eligible_advisors a
            JOIN content_packs p ON p.business_date = :d AND p.scope = 'segment' AND p.segment = a.segment
             AND p.pack_key LIKE '%-daily'
            ON CONFLICT (business_date, advisor_id, pack_id) DO NOTHING"""), {"d": day})


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def rows(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).fetchall()


def planned_world(engine, advisors=200, research_digits="12345", day: dt.date = DAY):
    seed(engine, advisors=advisors, day=day)
    with engine.begin() as c:
        # A few recipients become research-mode numbers with fixed outcomes.
        for i, digit in enumerate(research_digits):
            c.execute(sa.text("UPDATE advisors SET phone_e164 = :p WHERE advisor_id = (SELECT advisor_id FROM "
                              "eligible_advisors ORDER BY advisor_id OFFSET :o LIMIT 1)"),
                      {"p": f"+91990000{i:03d}{digit}", "o": i * 7})
    make_ready(engine, day)
    content.assign_content(engine, day)
    planning.build_plan(engine, day, {"en": "daily_pack_v1", "hi": "daily_pack_hi_v1"}, jitter_window_s=5)
    return scalar(engine, "SELECT count(*) FROM delivery_plan")


def send_everything(engine, sandbox):
    """Queue the day's plan and run every sender unit (the mapped send_shard bodies), jitter off."""
    from include.delivery.fanout import SenderOptions, prepare_fanout, send_unit
    from include.whatsapp.client import WhatsAppSettings
    from tests.support import TEST_TOKEN

    settings = WhatsAppSettings(base_url=sandbox.url, access_token=TEST_TOKEN, waba_id="200000000000001")
    for unit in prepare_fanout(engine, DAY):
        send_unit(engine, settings, unit, SenderOptions(jitter_honoured=False))


def failed_deliveries(engine, day: dt.date, codes) -> list[int]:
    """One failed delivery (3 attempts) per error code, for the first advisors; returns their ids."""
    with engine.begin() as c:
        aids = [r[0] for r in c.execute(sa.text("SELECT advisor_id FROM advisors ORDER BY advisor_id LIMIT :n"),
                                        {"n": len(codes)})]
        for aid, code in zip(aids, codes, strict=True):
            c.execute(sa.text("INSERT INTO deliveries (idempotency_key, business_date, advisor_id, to_phone, status,"
                              " attempts, error_code, error_title, failed_at) SELECT CAST(:d AS text) || ':' ||"
                              " advisor_id, :d, advisor_id, phone_e164, 'failed', 3, :code, 'x', now() FROM advisors"
                              " WHERE advisor_id = :a"), {"d": day, "a": aid, "code": code})
    return aids
