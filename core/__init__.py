"""Shared infrastructure: settings, database, mail transport, CLI and migrations."""
