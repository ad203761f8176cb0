"""WhatsApp Cloud API platform facts that both our sender and the sandbox rely on: per-number
throughput levels and the portfolio messaging tiers (unique recipients per rolling 24 h).
Kept free of Airflow imports so that the sandbox stays a light process."""

THROUGHPUT_MPS = {"STANDARD": 80, "HIGH": 1000, "COEXISTENCE": 20}
TIER_LIMITS = {"TIER_250": 250, "TIER_2K": 2_000, "TIER_10K": 10_000, "TIER_100K": 100_000, "TIER_UNLIMITED": None}
