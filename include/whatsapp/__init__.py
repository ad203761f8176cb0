"""The WhatsApp Cloud API integration: the Graph client and hook, platform limits, the webhook receiver."""
