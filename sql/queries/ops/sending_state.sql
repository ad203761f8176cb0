SELECT paused, reason, changed_by, changed_at, cause FROM ops_controls WHERE control = 'sending'
