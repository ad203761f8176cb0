INSERT INTO do_not_contact (phone_e164, reason, source, added_by)
VALUES (:phone_e164, :reason, 'import', 'demo_world')
ON CONFLICT (phone_e164) DO NOTHING
