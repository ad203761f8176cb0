-- Put failed deliveries with the given (retryable) codes back in the queue; attempts are kept. The failed
-- attempt's wamid is set aside (superseded), so its late webhooks can never settle the resend.
UPDATE deliveries
SET status = 'queued', error_code = NULL, error_title = NULL, failed_at = NULL,
    superseded_wamids = CASE WHEN wamid IS NULL THEN superseded_wamids ELSE superseded_wamids || wamid END,
    wamid = NULL, sent_at = NULL, delivered_at = NULL, read_at = NULL, accepted_at = NULL, updated_at = now()
WHERE business_date = :business_date AND status = 'failed' AND error_code = ANY(:codes)
  -- a re-send is not critical: none on a number in quality cooldown (include/delivery/cooldown.py)
  AND (phone_number_id IS NULL OR NOT phone_number_id = ANY(CAST(:held_numbers AS text[])))
RETURNING advisor_id
