-- Lifecycle webhooks (issue 14): Meta tells us about template, template-quality, phone-number and account
-- changes by webhook, and the receiver applies them in the transaction that stores the event, so the fan-out
-- sees a paused template or a flagged number without polling Graph.
--
-- webhook_events.kind gains:
--   'template_status'  field message_template_status_update
--   'template_quality' field message_template_quality_update
--   'phone_quality'    field phone_number_quality_update
--   'account_alert'    field account_alerts
-- ('error' already holds the account-level errors: value.errors[] on a `messages` webhook.)
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_kind_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_kind_check
    CHECK (kind IN ('status', 'message', 'error', 'user_preference', 'template_status', 'template_quality',
                    'phone_quality', 'account_alert'));

-- Meta's template events include ARCHIVED (archived for inactivity, deleted after 28 days unless unarchived);
-- an archived template cannot be sent, so it is a status of its own.
ALTER TABLE whatsapp_templates DROP CONSTRAINT whatsapp_templates_status_check;
ALTER TABLE whatsapp_templates ADD CONSTRAINT whatsapp_templates_status_check
    CHECK (status IN ('APPROVED', 'PENDING', 'REJECTED', 'PAUSED', 'DISABLED', 'IN_APPEAL', 'PENDING_DELETION',
                      'DELETED', 'LIMIT_EXCEEDED', 'ARCHIVED'));

-- The last status change a webhook reported: why (Meta's event, reason and pause/disable/rejection details),
-- when Meta says it happened (entry.time: an older event arriving late never overwrites a newer one) and the
-- event itself. quality_changed_at does the same for the quality score.
ALTER TABLE whatsapp_templates
    ADD COLUMN status_reason      text,
    ADD COLUMN status_changed_at  timestamptz,
    ADD COLUMN status_event_id    bigint REFERENCES webhook_events (event_id) ON DELETE SET NULL,
    ADD COLUMN quality_changed_at timestamptz;

-- The last phone_number_quality_update applied to a number: Meta's event (FLAGGED, UNFLAGGED, UPGRADE,
-- DOWNGRADE, THROUGHPUT_UPGRADE, ONBOARDING), when it happened and the event.
ALTER TABLE sending_numbers
    ADD COLUMN quality_event      text,
    ADD COLUMN quality_changed_at timestamptz,
    ADD COLUMN quality_event_id   bigint REFERENCES webhook_events (event_id) ON DELETE SET NULL;
