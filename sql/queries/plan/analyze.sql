-- Fresh statistics after writing a day's plan: the 06:00 queue is filled from it and the claim query joins it.
-- Done here, at plan time (05:50), so the fan-out's prepare_send_queue does not pay for it at 06:00.
ANALYZE delivery_plan
