SELECT count(*) FROM eligible_advisors
