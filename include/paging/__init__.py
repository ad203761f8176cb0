"""Paging: integrations that wake a person (PagerDuty's Events API v2), kept apart from the incident domain
(include/incidents/), which decides who is paged and when and calls `pagerduty.send_event`."""
