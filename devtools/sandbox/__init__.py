"""Local sandbox of the WhatsApp Cloud API and of a Slack incoming webhook (see state.py, app.py)."""
