"""The consumer process: ingest queue to Postgres (see README, Status)."""
