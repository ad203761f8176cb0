-- How a pack was reviewed on a date; a rerun replaces the row only when something changed.
-- renders_failed: the pack's renders that carry a finding of the AI (or its cache) after the merge.
INSERT INTO pack_compliance_reviews AS x (business_date, pack_id, text_sha256, mode, source, model, verdict, findings,
                                          reason, renders_failed)
VALUES (:business_date, :pack_id, :text_sha256, :mode, :source, :model, :verdict, CAST(:findings AS jsonb), :reason,
        :renders_failed)
ON CONFLICT (business_date, pack_id) DO UPDATE SET
    text_sha256 = EXCLUDED.text_sha256, mode = EXCLUDED.mode, source = EXCLUDED.source, model = EXCLUDED.model,
    verdict = EXCLUDED.verdict, findings = EXCLUDED.findings, reason = EXCLUDED.reason,
    renders_failed = EXCLUDED.renders_failed, reviewed_at = now()
WHERE (x.text_sha256, x.mode, x.source, x.model, x.verdict, x.findings, x.reason, x.renders_failed)
      IS DISTINCT FROM (EXCLUDED.text_sha256, EXCLUDED.mode, EXCLUDED.source, EXCLUDED.model, EXCLUDED.verdict,
                        EXCLUDED.findings, EXCLUDED.reason, EXCLUDED.renders_failed)
