-- Segment display names (what advisors read).
SELECT code, name FROM segments ORDER BY send_order
