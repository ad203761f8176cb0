INSERT INTO alerts_raised (business_date, alert_key) VALUES (:business_date, :alert_key)
ON CONFLICT DO NOTHING
RETURNING alert_key
