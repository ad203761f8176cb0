SELECT paused, cause, reason, changed_by, changed_at FROM ops_controls WHERE control = 'sending'
