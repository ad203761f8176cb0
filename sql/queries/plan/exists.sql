SELECT 1 FROM delivery_plan WHERE business_date = :business_date LIMIT 1
