"""Shared core of every Lectr process: CLI, settings, logging, broker, database helpers."""
