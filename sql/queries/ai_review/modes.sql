-- How the date's packs were reviewed: count per mode, the packs failed by an AI verdict, and the renders failed.
SELECT mode, count(*) AS packs, count(*) FILTER (WHERE verdict = 'fail') AS failed,
       coalesce(sum(renders_failed), 0) AS renders_failed
FROM pack_compliance_reviews WHERE business_date = :business_date
GROUP BY mode ORDER BY mode
