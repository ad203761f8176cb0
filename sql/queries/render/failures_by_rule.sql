-- QC failures of a date counted by rule id, with an example pack for each.
SELECT f ->> 'rule' AS rule_id, count(*) AS renders, min(p.pack_key) AS example_pack
FROM renders r
CROSS JOIN LATERAL jsonb_array_elements(r.qc_reasons) f
JOIN content_packs p ON p.pack_id = r.pack_id
WHERE r.business_date = :business_date AND r.qc_status = 'failed'
GROUP BY 1 ORDER BY 2 DESC, 1
