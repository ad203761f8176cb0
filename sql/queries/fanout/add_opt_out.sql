-- WhatsApp says the user stopped marketing messages (131050): never message them again.
INSERT INTO do_not_contact (phone_e164, reason, source, added_by)
VALUES (:phone_e164, 'WhatsApp 131050: user stopped marketing messages', 'api_opt_out', 'delivery_fanout')
ON CONFLICT (phone_e164) DO NOTHING
