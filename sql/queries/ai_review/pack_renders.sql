-- The renders of one pack on a date with their QC verdict (an AI violation is merged into these).
SELECT render_id, qc_status, qc_reasons FROM renders
WHERE business_date = :business_date AND pack_id = :pack_id
ORDER BY render_id
