"""The nightly content window (20:30 IST): approvals, templates, rendering and render QC, fallbacks, the canary."""
