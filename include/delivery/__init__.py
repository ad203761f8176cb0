"""The morning delivery: the 05:50 check, planning, sending numbers, the kill switch and the 06:00 fan-out."""
