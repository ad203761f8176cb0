INSERT INTO oncall_roles (role, display_name, person, slack_channel, pagerduty_routing_key, email, active,
                          updated_at, updated_by)
VALUES (:role, :display_name, :person, :slack_channel, :pagerduty_routing_key, :email, :active, now(), :updated_by)
ON CONFLICT (role) DO UPDATE
SET display_name = EXCLUDED.display_name, person = EXCLUDED.person, slack_channel = EXCLUDED.slack_channel,
    pagerduty_routing_key = EXCLUDED.pagerduty_routing_key, email = EXCLUDED.email, active = EXCLUDED.active,
    updated_at = now(), updated_by = EXCLUDED.updated_by
RETURNING role
