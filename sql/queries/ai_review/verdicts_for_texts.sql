-- Stored verdicts for these pack texts, any model, newest first (the cache of unchanged text).
SELECT text_sha256, model, verdict, findings, reviewed_at
FROM ai_compliance_verdicts
WHERE text_sha256 = ANY(:hashes)
ORDER BY text_sha256, reviewed_at DESC, model
