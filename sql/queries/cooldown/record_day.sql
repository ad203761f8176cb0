INSERT INTO number_ramp_days (ramp_id, business_date, quality, share_pct, decision)
VALUES (:ramp_id, :business_date, :quality, :share_pct, :decision)
ON CONFLICT (ramp_id, business_date) DO NOTHING
