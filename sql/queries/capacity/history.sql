SELECT month, eligible_advisors, messages_accepted, peak_mps, throughput_mps, db_bytes
FROM (SELECT * FROM capacity_snapshots ORDER BY month DESC LIMIT :months) s
ORDER BY month
