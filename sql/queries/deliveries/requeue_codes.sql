-- Put failed deliveries with the given (retryable) codes back in the queue; attempts are kept.
UPDATE deliveries
SET status = 'queued', error_code = NULL, error_title = NULL, failed_at = NULL, updated_at = now()
WHERE business_date = :business_date AND status = 'failed' AND error_code = ANY(:codes)
RETURNING advisor_id
