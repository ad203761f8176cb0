-- Render and QC state of a date, for the summary and the tests.
SELECT count(*) AS renders,
       count(*) FILTER (WHERE qc_status = 'passed') AS passed,
       count(*) FILTER (WHERE qc_status = 'failed') AS failed,
       count(*) FILTER (WHERE qc_status = 'pending') AS pending,
       coalesce(sum(bytes), 0) AS bytes
FROM renders WHERE business_date = :business_date
