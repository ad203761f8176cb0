-- Record one render and its QC verdict. Re-rendering a (date, advisor, pack) replaces the row.
INSERT INTO renders (business_date, advisor_id, pack_id, input_sha256, storage_uri, content_sha256, bytes, width,
                     height, mime_type, qc_status, qc_reasons, qc_checked_at, manifest, render_ms)
VALUES (:business_date, :advisor_id, :pack_id, :input_sha256, :storage_uri, :content_sha256, :bytes, :width,
        :height, :mime_type, :qc_status, CAST(:qc_reasons AS jsonb), now(), CAST(:manifest AS jsonb), :render_ms)
ON CONFLICT (business_date, advisor_id, pack_id) DO UPDATE SET
    input_sha256 = EXCLUDED.input_sha256, storage_uri = EXCLUDED.storage_uri,
    content_sha256 = EXCLUDED.content_sha256, bytes = EXCLUDED.bytes, width = EXCLUDED.width,
    height = EXCLUDED.height, mime_type = EXCLUDED.mime_type, qc_status = EXCLUDED.qc_status,
    qc_reasons = EXCLUDED.qc_reasons, qc_checked_at = now(), manifest = EXCLUDED.manifest,
    render_ms = EXCLUDED.render_ms
