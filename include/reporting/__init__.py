"""Post-delivery reporting (06:05/06:15/06:30 IST): webhook reconciliation, KPIs, data quality, the daily report."""
