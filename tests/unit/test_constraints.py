"""The schema itself rejects rows that break the platform's invariants."""
import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

ADVISOR = ("INSERT INTO advisors (external_ref, name, phone_e164, segment, registration_no, opted_in, consent_at) "
           "VALUES (:ref, 'A B', :phone, :seg, 'INA000001', :opted, :consent) RETURNING advisor_id")


CONSENT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _advisor(conn, ref="R1", phone="+919812345678", seg="equity", opted=True, consent=CONSENT):
    params = dict(ref=ref, phone=phone, seg=seg, opted=opted, consent=consent)
    return conn.execute(sa.text(ADVISOR), params).scalar_one()


def _rejects(engine, sql, params=None, match=None):
    with pytest.raises(IntegrityError, match=match), engine.begin() as conn:
        if callable(sql):
            sql(conn)
        else:
            conn.execute(sa.text(sql) if isinstance(sql, str) else sql, params or {})


@pytest.mark.parametrize("phone", ["919812345678", "+0919812345678", "+91 98123 45678", "+91981234567812345", "+9"])
def test_advisor_phone_must_be_e164(app_db, phone):
    _rejects(app_db, lambda c: _advisor(c, phone=phone), match="advisors_phone_e164_check")


def test_advisor_phone_unique_and_segment_known(app_db):
    with app_db.begin() as c:
        _advisor(c)
    _rejects(app_db, lambda c: _advisor(c, ref="R2"), match="advisors_phone_e164_key")
    _rejects(app_db, lambda c: _advisor(c, ref="R3", phone="+919812345679", seg="crypto"), match="segment_fkey")


def test_opted_in_requires_consent_time(app_db):
    _rejects(app_db, lambda c: _advisor(c, consent=None), match="advisors_consent_recorded")


def _delivery_sql(key="2026-11-23:{aid}", status="queued", error_code=None, wamid=None, skip=None):
    return sa.text("INSERT INTO deliveries (idempotency_key, business_date, advisor_id, to_phone, status, error_code,"
                   " wamid, skip_reason) VALUES (:key, DATE '2026-11-23', :aid, '+919812345678', :status, :code,"
                   " :wamid, :skip)"), dict(status=status, code=error_code, wamid=wamid, skip=skip, key=key)


def test_delivery_invariants(app_db):
    with app_db.begin() as c:
        aid = _advisor(c)
    ok_sql, ok = _delivery_sql()
    ok["key"] = f"2026-11-23:{aid}"
    with app_db.begin() as c:
        c.execute(ok_sql, {**ok, "aid": aid})
    # A second delivery for the same (business date, advisor) is refused: the idempotency key.
    _rejects(app_db, ok_sql, {**ok, "aid": aid}, match="deliveries_idempotency_key_key|deliveries_business_date")
    cases = [
        (dict(key="wrong-key"), "deliveries_key_matches"),
        (dict(status="failed"), "deliveries_failed_has_code"),
        (dict(status="skipped"), "deliveries_skipped_has_reason"),
        (dict(status="accepted"), "deliveries_accepted_has_wamid"),
        (dict(status="teleported"), "deliveries_status_check"),
    ]
    with app_db.begin() as c:
        aid2 = _advisor(c, ref="R2", phone="+919812345679")
    for overrides, constraint in cases:
        sql, params = _delivery_sql(**{k: v for k, v in overrides.items() if k != "key"})
        params["key"] = overrides.get("key", f"2026-11-23:{aid2}")
        _rejects(app_db, sql, {**params, "aid": aid2}, match=constraint)


def test_content_pack_rules(app_db):
    base = ("INSERT INTO content_packs (pack_key, business_date, scope, segment, title, body, status, approved_by,"
            " approved_at, is_evergreen_fallback) VALUES (:k, :d, :scope, :seg, 't', 'b', :status, :by, :at, :eg)")
    good = dict(k="p1", d=dt.date(2026, 11, 23), scope="segment", seg="equity", status="pending", by=None, at=None,
                eg=False)
    with app_db.begin() as c:
        c.execute(sa.text(base), good)
    _rejects(app_db, base, {**good, "k": "p2", "status": "approved"}, match="content_packs_approval_recorded")
    _rejects(app_db, base, {**good, "k": "p3", "scope": "all"}, match="content_packs_scope_target")
    _rejects(app_db, base, {**good, "k": "p4", "eg": True}, match="content_packs_evergreen_undated")
    _rejects(app_db, base, {**good, "k": "p5", "status": "maybe"}, match="content_packs_status_check")


def test_kill_switch_pause_needs_reason_and_numbers_have_one_primary_per_shard(app_db):
    _rejects(app_db, "UPDATE ops_controls SET paused = true, reason = '  ' WHERE control = 'sending'",
             match="ops_controls_pause_has_reason")
    ins = ("INSERT INTO sending_numbers (phone_number_id, display_phone, shard, role) VALUES (:id, :ph, :shard, :role)")
    with app_db.begin() as c:
        c.execute(sa.text(ins), dict(id="111111", ph="+918000000001", shard=0, role="primary"))
    _rejects(app_db, ins, dict(id="222222", ph="+918000000002", shard=0, role="primary"),
             match="sending_numbers_one_active_primary_per_shard")
    _rejects(app_db, ins, dict(id="333333", ph="+918000000003", shard=None, role="primary"),
             match="sending_numbers_primary_has_shard")
    _rejects(app_db, "INSERT INTO do_not_contact (phone_e164, reason, source) VALUES ('12345', 'x', 'operator')",
             match="do_not_contact_phone_e164_check")
