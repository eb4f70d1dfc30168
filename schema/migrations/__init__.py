"""Alembic migration history for the tables in :mod:`schema.tables`."""
