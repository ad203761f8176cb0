-- Record the month's capacity figures (re-running the month refreshes them).
INSERT INTO capacity_snapshots (month, eligible_advisors, messages_accepted, peak_mps, throughput_mps, db_bytes)
SELECT :month,
       (SELECT count(*) FROM eligible_advisors WHERE created_at < CAST(:next_month AS date)),
       (SELECT count(*) FROM deliveries WHERE business_date >= :month AND business_date < :next_month
          AND wamid IS NOT NULL),
       coalesce((SELECT max(n) FROM (SELECT count(*) AS n FROM delivery_attempts
                                     WHERE business_date >= :month AND business_date < :next_month
                                       AND outcome = 'accepted'
                                     GROUP BY date_trunc('second', at)) s), 0),
       (SELECT coalesce(sum(throughput_mps), 0) FROM sending_numbers WHERE active AND role = 'primary'),
       pg_database_size(current_database())
ON CONFLICT (month) DO UPDATE SET eligible_advisors = EXCLUDED.eligible_advisors,
    messages_accepted = EXCLUDED.messages_accepted, peak_mps = EXCLUDED.peak_mps,
    throughput_mps = EXCLUDED.throughput_mps, db_bytes = EXCLUDED.db_bytes, taken_at = now()
RETURNING month, eligible_advisors, messages_accepted, peak_mps, throughput_mps, db_bytes
