SELECT DISTINCT template_language, template_name FROM delivery_plan WHERE business_date = :business_date
