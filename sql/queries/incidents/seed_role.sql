-- Demo-world roster: inserted once, never overwriting an operator's later edit.
INSERT INTO oncall_roles (role, display_name, person, slack_channel, pagerduty_routing_key, email, active, updated_by)
VALUES (:role, :display_name, :person, :slack_channel, :pagerduty_routing_key, :email, true, 'demo_world')
ON CONFLICT (role) DO NOTHING
