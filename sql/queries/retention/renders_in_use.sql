-- Render objects something still needs: renders of the retention window, renders a plan row of the
-- window points at, and renders a delivery that is not final yet (whatever its date) will send, or a
-- plan row not queued yet (no delivery, and no archived one) may still send.
SELECT DISTINCT r.storage_uri
FROM renders r
WHERE r.business_date >= :since
   OR EXISTS (SELECT 1 FROM delivery_plan p WHERE p.render_id = r.render_id AND p.business_date >= :since)
   OR EXISTS (SELECT 1 FROM pack_assignments x WHERE x.render_id = r.render_id AND x.business_date >= :since)
   OR EXISTS (SELECT 1 FROM delivery_plan p
              JOIN deliveries d ON d.business_date = p.business_date AND d.advisor_id = p.advisor_id
              WHERE p.render_id = r.render_id AND d.status IN ('queued', 'sending', 'unknown'))
   OR EXISTS (SELECT 1 FROM delivery_plan p
              WHERE p.render_id = r.render_id
                AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.business_date = p.business_date
                                AND d.advisor_id = p.advisor_id)
                -- an archived delivery (its key kept in sent_keys) is done, not waiting to be queued
                AND NOT EXISTS (SELECT 1 FROM sent_keys s WHERE s.business_date = p.business_date
                                AND s.advisor_id = p.advisor_id))
   OR EXISTS (SELECT 1 FROM canary_sends c WHERE c.render_id = r.render_id AND c.status IN ('queued', 'sending', 'unknown'))
