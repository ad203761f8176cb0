-- The latest kill-switch changes (who, when, why).
SELECT at, actor, action, reason FROM audit_log
WHERE action IN ('pause_sending', 'resume_sending')
ORDER BY at DESC, audit_id DESC
LIMIT :limit
