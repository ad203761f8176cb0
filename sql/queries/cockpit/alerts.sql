-- Alerts raised once for the date through post_once (include/core/alerting.py), newest first.
SELECT alert_key, raised_at FROM alerts_raised WHERE business_date = :business_date ORDER BY raised_at DESC
