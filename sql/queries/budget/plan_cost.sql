-- The date's planned messages not sent yet, by their template's pricing category, with the rate in force that
-- day (NULL: no rate on the card). A template we do not know is counted as 'marketing' (the dearest category for
-- a business-initiated template), so the projection errs high.
SELECT c.category, c.messages, r.inr_per_message
FROM (
    SELECT coalesce(lower(t.category), 'marketing') AS category, count(*) AS messages
    FROM delivery_plan p
    LEFT JOIN whatsapp_templates t ON t.name = p.template_name AND t.language = p.template_language
    LEFT JOIN deliveries d ON d.business_date = p.business_date AND d.advisor_id = p.advisor_id
    WHERE p.business_date = :business_date AND d.wamid IS NULL
    GROUP BY 1
) c
LEFT JOIN LATERAL (
    SELECT rc.inr_per_message FROM rate_card rc
    WHERE rc.category = c.category AND rc.pricing_model = 'PMP' AND rc.effective_from <= :business_date
    ORDER BY rc.effective_from DESC LIMIT 1) r ON true
ORDER BY c.category
