-- Open an incident, or take the open one with the same dedup key (locked until the caller commits).
-- `opened` is true when this statement created the row.
INSERT INTO incidents (dedup_key, severity, category, trigger, business_date, opened_at, impact)
VALUES (:dedup_key, :severity, :category, :trigger, :business_date, :now, '{}'::jsonb)
ON CONFLICT (dedup_key) WHERE resolved_at IS NULL
DO UPDATE SET dedup_key = EXCLUDED.dedup_key
RETURNING incident_id, (xmax = 0) AS opened
