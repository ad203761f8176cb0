-- Compliance review of every message sent (accepted by WhatsApp) in [:month_start, :month_end):
-- one row per violation, with the rule, the record and the reason.
WITH sent AS (
    SELECT d.delivery_id, d.business_date, d.advisor_id, d.to_phone, d.pack_id, d.accepted_at, d.wamid
    FROM deliveries d
    WHERE d.business_date >= :month_start AND d.business_date < :month_end AND d.wamid IS NOT NULL
)
SELECT 'PACK-NOT-APPROVED' AS rule, s.business_date, s.advisor_id, s.delivery_id,
       'pack ' || coalesce(c.pack_key, '?') || ' is ' || coalesce(c.status, 'missing')
       || CASE WHEN c.status = 'approved' THEN ' for another date' ELSE '' END AS detail
FROM sent s LEFT JOIN content_packs c ON c.pack_id = s.pack_id
WHERE c.pack_id IS NULL OR c.status <> 'approved'
   OR NOT (c.is_evergreen_fallback OR c.business_date = s.business_date)
UNION ALL
SELECT 'DISCLAIMER-MISSING', s.business_date, s.advisor_id, s.delivery_id,
       'pack ' || c.pack_key || ' has no SEBI disclaimer with the mandatory wording'
FROM sent s JOIN content_packs c ON c.pack_id = s.pack_id
WHERE length(btrim(c.disclaimer)) = 0 OR NOT (c.disclaimer ILIKE ALL (CAST(:phrases AS text[])))
UNION ALL
SELECT 'NO-QC-PASSED-RENDER', s.business_date, s.advisor_id, s.delivery_id,
       CASE WHEN r.render_id IS NULL THEN 'sent without a render' ELSE 'render ' || r.render_id || ' QC ' || r.qc_status END
FROM sent s
LEFT JOIN delivery_plan p ON p.business_date = s.business_date AND p.advisor_id = s.advisor_id
LEFT JOIN renders r ON r.render_id = p.render_id
WHERE r.render_id IS NULL OR r.qc_status <> 'passed'
UNION ALL
SELECT 'NO-CONSENT', s.business_date, s.advisor_id, s.delivery_id,
       CASE WHEN a.consent_at IS NULL THEN 'no consent on record'
            ELSE 'consent recorded ' || to_char(a.consent_at, 'YYYY-MM-DD HH24:MI') || ', after the send' END
FROM sent s JOIN advisors a ON a.advisor_id = s.advisor_id
WHERE a.consent_at IS NULL OR a.consent_at > s.accepted_at
UNION ALL
SELECT 'SENT-TO-DNC', s.business_date, s.advisor_id, s.delivery_id,
       'on the do-not-contact list since ' || to_char(x.added_at, 'YYYY-MM-DD HH24:MI') || ' (' || x.source || ')'
FROM sent s JOIN do_not_contact x ON x.phone_e164 = s.to_phone AND x.added_at <= s.accepted_at
UNION ALL
-- Operator actions leave state behind; each must have its audit row.
SELECT 'UNAUDITED-KILL-SWITCH', NULL, NULL, NULL,
       'sending ' || CASE WHEN o.paused THEN 'paused' ELSE 'resumed' END || ' by ' || o.changed_by || ' at '
       || to_char(o.changed_at, 'YYYY-MM-DD HH24:MI:SS') || ' with no audit_log row'
FROM ops_controls o
WHERE o.control = 'sending' AND o.changed_by <> 'system'
  AND o.changed_at >= :month_start AND o.changed_at < :month_end
  AND NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.action IN ('pause_sending', 'resume_sending')
                  AND l.actor = o.changed_by AND abs(extract(epoch FROM l.at - o.changed_at)) < 60)
UNION ALL
SELECT 'UNAUDITED-ROTATION', NULL, NULL, NULL,
       'number ' || n.phone_number_id || ' retired (' || n.retired_reason || ') with no audit_log row'
FROM sending_numbers n
WHERE n.retired_reason IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.action = 'rotate_number' AND l.target = n.phone_number_id)
ORDER BY 1, 2, 3
