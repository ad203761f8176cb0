-- How many advisors the nightly window renders for (sizes the mapped batches).
SELECT count(*) FROM eligible_advisors
