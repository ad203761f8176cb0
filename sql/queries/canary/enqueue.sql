-- Queue one canary message. The key names the render, so a rerun with unchanged renders never sends
-- again (its earlier outcome joins the new run); a changed render is a new message.
INSERT INTO canary_sends (canary_run_id, idempotency_key, business_date, to_phone, sample_advisor_id, render_id,
                          pack_id, segment, shard, template_name, template_language)
VALUES (:canary_run_id, :idempotency_key, :business_date, :to_phone, :sample_advisor_id, :render_id, :pack_id,
        :segment, :shard, :template_name, :template_language)
ON CONFLICT (idempotency_key) DO UPDATE SET canary_run_id = EXCLUDED.canary_run_id
