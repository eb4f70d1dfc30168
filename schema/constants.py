"""Allowed values of status-like columns, importable without SQLAlchemy."""

from __future__ import annotations

ORG_STATUSES = ("active", "disabled")
MEMBER_ROLES = ("owner", "admin", "member", "viewer")
ANOMALY_KINDS = ("cost", "latency", "error_rate", "traffic", "model_drift")
