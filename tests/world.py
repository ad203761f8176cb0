"""Test worlds built on the real demo-world generator and the real schema."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from include import demo_world

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
