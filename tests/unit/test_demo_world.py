import datetime as dt

import sqlalchemy as sa

from devtools import demo_world


def test_generator_is_deterministic_and_seed_sensitive():
    a = demo_world.generate_advisor_rows(500, seed=1)
    b = demo_world.generate_advisor_rows(500, seed=1)
    c = demo_world.generate_advisor_rows(500, seed=2)
    assert a == b
    assert a != c
    assert {r["segment"] for r in a} == {"mutual_fund", "equity", "insurance", "wealth"}


def test_generated_phones_are_unique_and_malformed_rate_is_about_half_a_percent():
    rows = demo_world.generate_advisor_rows(20_000, seed=42)
    malformed = [r for r in rows if r["phone"] in demo_world.MALFORMED]
    good = [r["phone"] for r in rows if r["phone"] not in demo_world.MALFORMED]
    assert len(set(good)) == len(good)
    assert 0.003 < len(malformed) / len(rows) < 0.008


def test_seed_reports_malformed_rows_and_inserts_nothing_half_way(app_db):
    result = demo_world.seed_world(app_db, advisors=1000, seed=42, today=dt.date(2026, 11, 23))
    rows = demo_world.generate_advisor_rows(1000, seed=42)
    bad_refs = {r["external_ref"] for r in rows if r["phone"] in demo_world.MALFORMED}
    report = result.import_report
    assert bad_refs and {r.external_ref for r in report.rejected} == bad_refs
    assert all(r.reason and r.row_number >= 1 for r in report.rejected)
    assert report.accepted == 1000 - len(bad_refs)
    with app_db.connect() as c:
        stored = {r[0] for r in c.execute(sa.text("SELECT external_ref FROM advisors"))}
        assert not (stored & bad_refs)
        assert len(stored) == report.accepted
        listed = c.execute(sa.text("SELECT count(*) FROM import_rejections WHERE import_id = :i"),
                           {"i": report.import_id}).scalar_one()
        assert listed == len(bad_refs)
        dnc = c.execute(sa.text("SELECT count(*) FROM do_not_contact")).scalar_one()
        assert 3 <= dnc <= 25  # about 1%
        numbers = c.execute(sa.text("SELECT role, count(*) FROM sending_numbers GROUP BY role")).fetchall()
        assert dict(numbers) == {"primary": 4, "hot_spare": 1}
        pending = c.execute(sa.text("SELECT count(*) FROM content_packs WHERE status = 'pending'")).scalar_one()
        assert pending > 0
        evergreen = c.execute(sa.text("SELECT count(*) FROM content_packs WHERE is_evergreen_fallback")).scalar_one()
        assert evergreen >= 8


def test_seeding_twice_changes_nothing(app_db):
    demo_world.seed_world(app_db, advisors=300, seed=7, today=dt.date(2026, 11, 23))

    def snapshot():
        with app_db.connect() as c:
            return [c.execute(sa.text(f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {t} t"))
                    .one() for t in ("advisors", "do_not_contact", "content_packs", "sending_numbers",
                                     "whatsapp_templates")]

    first = snapshot()
    again = demo_world.seed_world(app_db, advisors=300, seed=7, today=dt.date(2026, 11, 23))
    assert snapshot() == first
    assert again.dnc_added == 0
