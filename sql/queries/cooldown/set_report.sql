UPDATE number_ramps SET content_report_uri = :uri WHERE ramp_id = :ramp_id
