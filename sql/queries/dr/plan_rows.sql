-- A plan's content, for comparing a rebuilt plan with production's (planned_at excluded).
SELECT advisor_id, segment, pack_id, render_id, content_source, template_name, template_language, phone_number_id,
       shard, jitter_ms
FROM delivery_plan WHERE business_date = :business_date
