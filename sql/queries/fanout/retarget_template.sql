-- A template was paused or disabled: unsent rows of the date move to the approved variant.
UPDATE delivery_plan p SET template_name = :new_template
WHERE p.business_date = :business_date AND p.template_name = :old_template
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.business_date = p.business_date AND d.advisor_id = p.advisor_id
                  AND d.status NOT IN ('queued', 'sending'))
