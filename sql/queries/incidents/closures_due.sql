-- PagerDuty alerts to close, one per (incident, role) that was paged: 'resolve' once the incident is resolved;
-- 'acknowledge' once it is acknowledged, but only if that role's last page came before the acknowledgement (an
-- impact page sent after it must still reach the person). Each sent once (incident_page_closures). The routing
-- key is the one the role's last page used.
SELECT incident_id, role, dedup_key, routing_key, severity, action, actor
FROM (
    SELECT DISTINCT ON (p.incident_id, p.role)
           p.incident_id, p.role, p.dedup_key, p.routing_key, p.sent_at, i.severity,
           i.acknowledged_at, i.resolved_at,
           CASE WHEN i.resolved_at IS NOT NULL THEN 'resolve' ELSE 'acknowledge' END AS action,
           COALESCE(i.resolved_by, i.acknowledged_by) AS actor
    FROM incident_pages p
    JOIN incidents i USING (incident_id)
    WHERE p.outcome = 'sent' AND p.routing_key IS NOT NULL
      AND (i.resolved_at IS NOT NULL OR i.acknowledged_at IS NOT NULL)
    ORDER BY p.incident_id, p.role, p.sent_at DESC
) last_page
WHERE (action = 'resolve' OR sent_at <= acknowledged_at)
  AND NOT EXISTS (SELECT 1 FROM incident_page_closures c
                  WHERE c.incident_id = last_page.incident_id AND c.role = last_page.role
                    AND (c.action = 'resolve' OR c.action = last_page.action))
ORDER BY incident_id, role
