-- Per eligible advisor: whether an assignment exists and whether its content is deliverable.
SELECT count(*) AS eligible,
       count(x.advisor_id) AS assigned,
       count(*) FILTER (WHERE x.source = 'approved') AS approved,
       count(*) FILTER (WHERE x.source = 'fallback') AS fallback,
       count(*) FILTER (WHERE x.source = 'approved' AND (r.render_id IS NULL OR r.qc_status <> 'passed'))
           AS approved_without_passed_render
FROM eligible_advisors a
LEFT JOIN pack_assignments x ON x.business_date = :business_date AND x.advisor_id = a.advisor_id
LEFT JOIN renders r ON r.render_id = x.render_id
