SELECT d.business_date, d.quality, d.share_pct, d.decision FROM number_ramp_days d
WHERE d.ramp_id = :ramp_id ORDER BY d.business_date
