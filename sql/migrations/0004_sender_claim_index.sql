-- The sender claims rows by (date, shard, segment) in jitter order.
CREATE INDEX delivery_plan_unit_idx ON delivery_plan (business_date, shard, segment, jitter_ms);
