"""Allowed values of status-like columns, importable without SQLAlchemy."""

from __future__ import annotations

ORG_STATUSES = ("active", "disabled")
MEMBER_ROLES = ("owner", "admin", "member", "viewer")
ANOMALY_KINDS = ("cost", "latency", "error_rate", "traffic", "model_drift")
ANOMALY_STATUSES = ("open", "resolved", "dismissed")
RECOMMENDATION_STATUSES = ("open", "dismissed", "applied", "retired")
CONFIDENCES = ("high", "medium")
RUN_STATUSES = ("running", "ok", "failed")
