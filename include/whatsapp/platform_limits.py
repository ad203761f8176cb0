"""WhatsApp Cloud API platform facts that both our sender and the sandbox rely on: per-number
throughput levels and the portfolio messaging tiers (unique recipients per rolling 24 h).
Kept free of Airflow imports so that the sandbox stays a light process."""

THROUGHPUT_MPS = {"STANDARD": 80, "HIGH": 1000, "COEXISTENCE": 20}
# Portfolio messaging limits under the names Meta uses for `whatsapp_business_manager_messaging_limit`
# (https://developers.facebook.com/documentation/business-messaging/whatsapp/messaging-limits; the enum with TIER_50
# and TIER_NOT_SET: https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/phone_number_quality_update).
# TIER_NOT_SET and any other value have no limit here: the client reports them as "UNKNOWN".
TIER_LIMITS = {"TIER_50": 50, "TIER_250": 250, "TIER_2K": 2_000, "TIER_10K": 10_000, "TIER_100K": 100_000,
               "TIER_UNLIMITED": None}
