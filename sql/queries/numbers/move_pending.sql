-- Move a number's not-yet-sent work of a business date to another number: plan rows without a
-- delivery, and deliveries still queued. Returns how many plan rows moved.
WITH moved_deliveries AS (
    UPDATE deliveries SET phone_number_id = :to_number, updated_at = now()
    WHERE business_date = :business_date AND phone_number_id = :from_number AND status = 'queued'
    RETURNING advisor_id
)
UPDATE delivery_plan p SET phone_number_id = :to_number
WHERE p.business_date = :business_date AND p.phone_number_id = :from_number
  AND (NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.business_date = p.business_date AND d.advisor_id = p.advisor_id)
       OR p.advisor_id IN (SELECT advisor_id FROM moved_deliveries))
