-- Store a model's verdict for a pack text (a later call for the same text and model replaces it).
INSERT INTO ai_compliance_verdicts (text_sha256, model, verdict, findings, prompt_tokens, completion_tokens, cost,
                                    latency_ms, first_pack_key)
VALUES (:text_sha256, :model, :verdict, CAST(:findings AS jsonb), :prompt_tokens, :completion_tokens, :cost,
        :latency_ms, :pack_key)
ON CONFLICT (text_sha256, model) DO UPDATE SET
    verdict = EXCLUDED.verdict, findings = EXCLUDED.findings, prompt_tokens = EXCLUDED.prompt_tokens,
    completion_tokens = EXCLUDED.completion_tokens, cost = EXCLUDED.cost, latency_ms = EXCLUDED.latency_ms,
    reviewed_at = now()
