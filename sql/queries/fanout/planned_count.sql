-- Recipients planned for a date (what a messaging limit must cover).
SELECT count(*) FROM delivery_plan WHERE business_date = :business_date
