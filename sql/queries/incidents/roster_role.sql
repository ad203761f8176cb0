SELECT role, display_name, person, slack_channel, pagerduty_routing_key, email, active, updated_at, updated_by
FROM oncall_roles
WHERE role = :role
