"""Weekly, monthly and daily upkeep: backups, the DR drill, database upkeep, retention, dependencies,
the compliance review, capacity planning and the library refresh."""
