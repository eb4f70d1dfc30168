"""Every Lectr table, defined once with SQLAlchemy Core.

Alembic migrations in ``schema/migrations`` must produce exactly these tables; a test
compares them. Hot inserts go through asyncpg with the column names used here.

``request_logs`` and ``request_rollups`` carry no foreign keys on purpose: the
consumer inserts them in bulk and ``lectr replay`` may rebuild them into an empty
database, so neither may fail because an org row is missing or was deleted.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from schema.constants import (
    ANOMALY_KINDS,
    ANOMALY_STATUSES,
    CONFIDENCES,
    MEMBER_ROLES,
    ORG_STATUSES,
    RECOMMENDATION_STATUSES,
    RUN_STATUSES,
)

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

NOW = sa.text("now()")
NEW_UUID = sa.text("gen_random_uuid()")


def _id() -> sa.Column:
    return sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=NEW_UUID)


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW)


def _updated_at() -> sa.Column:
    return sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW)


def _org_fk() -> sa.Column:
    return sa.Column(
        "org_id",
        UUID(as_uuid=True),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    )


organizations = sa.Table(
    "organizations",
    metadata,
    _id(),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("status", sa.String(20), nullable=False, server_default="active"),
    # The dashboard's P95 latency target line (not an alert rule: see anomalies).
    sa.Column("p95_latency_threshold_ms", sa.Integer, nullable=False, server_default="5000"),
    # Per-org limits enforced by each proxy instance; NULL means unlimited.
    sa.Column("rate_limit_rpm", sa.Integer, nullable=True),
    sa.Column("max_concurrent_streams", sa.Integer, nullable=True),
    sa.Column(
        "alert_recipients",
        ARRAY(sa.Text),
        nullable=False,
        server_default=sa.text("'{}'::text[]"),
    ),
    # URLs each new anomaly is POSTed to as JSON (Slack-compatible ``text`` field).
    sa.Column(
        "alert_webhooks",
        ARRAY(sa.Text),
        nullable=False,
        server_default=sa.text("'{}'::text[]"),
    ),
    _created_at(),
    _updated_at(),
    sa.CheckConstraint(f"status IN {ORG_STATUSES!r}", name="status"),
    sa.CheckConstraint("p95_latency_threshold_ms > 0", name="p95_threshold_positive"),
    sa.CheckConstraint("rate_limit_rpm IS NULL OR rate_limit_rpm > 0", name="rpm_positive"),
    sa.CheckConstraint(
        "max_concurrent_streams IS NULL OR max_concurrent_streams > 0", name="streams_positive"
    ),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    _id(),
    _org_fk(),
    # HMAC-SHA256 of the raw key with LECTR_KEY_PEPPER, hex. The raw key is never stored.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    # The first characters of the key, shown in listings so people can tell keys apart.
    sa.Column("display_prefix", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200), nullable=True),
    _created_at(),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index(None, "org_id"),
)

org_members = sa.Table(
    "org_members",
    metadata,
    _id(),
    _org_fk(),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("role", sa.String(20), nullable=False, server_default="member"),
    # The OIDC `sub` claim, set the first time the member signs in.
    sa.Column("oidc_subject", sa.String(255), nullable=True),
    _created_at(),
    sa.UniqueConstraint("org_id", "email"),
    sa.CheckConstraint(f"role IN {MEMBER_ROLES!r}", name="role"),
)

org_invites = sa.Table(
    "org_invites",
    metadata,
    _id(),
    _org_fk(),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("role", sa.String(20), nullable=False, server_default="member"),
    # Keyed hash of the invite token; the token itself is only ever in the invite email.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "invited_by",
        UUID(as_uuid=True),
        sa.ForeignKey("org_members.id", ondelete="SET NULL"),
        nullable=True,
    ),
    _created_at(),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(f"role IN {MEMBER_ROLES!r}", name="role"),
    sa.Index(None, "org_id"),
)

provider_configs = sa.Table(
    "provider_configs",
    metadata,
    _id(),
    _org_fk(),
    sa.Column("provider", sa.String(40), nullable=False),
    # Azure OpenAI: https://<resource>.openai.azure.com
    sa.Column("endpoint", sa.Text, nullable=True),
    sa.Column("api_version", sa.String(40), nullable=True),
    # Model name -> deployment name; a model not listed uses its own name.
    sa.Column("deployments", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    _created_at(),
    _updated_at(),
    sa.UniqueConstraint("org_id", "provider"),
)

routing_rules = sa.Table(
    "routing_rules",
    metadata,
    _id(),
    _org_fk(),
    sa.Column("name", sa.String(200), nullable=False),
    # Lower runs first; the first enabled rule whose conditions all match wins.
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    # Conditions: NULL is a wildcard.
    sa.Column("match_feature", sa.String(100), nullable=True),
    sa.Column("match_task", sa.String(40), nullable=True),
    sa.Column("match_provider", sa.String(40), nullable=True),
    sa.Column("match_model", sa.String(200), nullable=True),
    # Action: what the request is rewritten to. NULL keeps the request's own value.
    sa.Column("target_provider", sa.String(40), nullable=True),
    sa.Column("target_model", sa.String(200), nullable=True),
    _created_at(),
    _updated_at(),
    sa.CheckConstraint(
        "target_provider IS NOT NULL OR target_model IS NOT NULL", name="has_action"
    ),
    sa.Index(None, "org_id", "priority"),
)

# One row per proxied request: metadata only, never bodies, prompts or keys.
# Range-partitioned by created_at (one partition per UTC day, see schema.partitions).
request_logs = sa.Table(
    "request_logs",
    metadata,
    # Made by the proxy; with created_at it makes inserts idempotent.
    sa.Column("id", UUID(as_uuid=True), nullable=False),
    # When the proxy received the request.
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # When the response (or stream) finished.
    sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("org_id", UUID(as_uuid=True), nullable=False),
    sa.Column("api_key_id", UUID(as_uuid=True), nullable=False),
    sa.Column("provider", sa.String(40), nullable=False),
    # True when X-Lectr-Provider named a provider Lectr does not know.
    sa.Column("provider_unknown", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("requested_model", sa.String(200), nullable=True),
    sa.Column("actual_model", sa.String(200), nullable=True),
    # The model the provider's response (or stream) says answered; NULL when it named none.
    sa.Column("response_model", sa.String(200), nullable=True),
    sa.Column("endpoint", sa.String(200), nullable=False),
    sa.Column("streaming", sa.Boolean, nullable=False),
    sa.Column("status_code", sa.SmallInteger, nullable=False),
    # e.g. rate_limited, timeout, client_disconnect, upstream_disconnect; NULL on success.
    sa.Column("error_category", sa.String(40), nullable=True),
    # provider | lectr | client | network
    sa.Column("error_source", sa.String(20), nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("ttfb_ms", sa.Float, nullable=True),
    sa.Column("input_tokens", sa.Integer, nullable=True),
    sa.Column("output_tokens", sa.Integer, nullable=True),
    sa.Column("cached_tokens", sa.Integer, nullable=True),
    # provider | tokeniser
    sa.Column("token_source", sa.String(20), nullable=True),
    # NULL when the model has no known price: never guessed.
    sa.Column("cost_usd", sa.Numeric(18, 8), nullable=True),
    sa.Column("feature", sa.String(100), nullable=False, server_default="untagged"),
    sa.Column("task_type", sa.String(40), nullable=True),
    sa.Column("rule_id", UUID(as_uuid=True), nullable=True),
    # A rule that matched but changes the provider, skipped because the request carried
    # no key for the target provider (X-Lectr-Provider-Key-<provider>).
    sa.Column("skipped_rule_id", UUID(as_uuid=True), nullable=True),
    sa.Column("proxy_instance", sa.String(200), nullable=False),
    sa.PrimaryKeyConstraint("id", "created_at"),
    sa.Index(None, "org_id", "created_at"),
    postgresql_partition_by="RANGE (created_at)",
)

# Hourly aggregates the consumer keeps from the rows it actually inserted, so the
# dashboards' cost does not grow with raw row count. latency_histogram holds counts per
# bucket of schema.latency (percentiles over any window come from summing them).
# The key of a rollup row: one per UTC hour x org x feature x provider x model sent for x
# answering model x task type x status class.
ROLLUP_KEYS = ("bucket_start", "org_id", "feature", "provider", "model", "response_model",
               "task_type", "status_class")  # fmt: skip
# The columns that add up when two rollups of one key meet (latency_ms_max takes the
# larger, latency_histogram adds bucket by bucket).
ROLLUP_SUMS = (
    "request_count",
    "error_count",
    "streaming_count",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "unpriced_count",
    "latency_ms_sum",
    "ttfb_ms_sum",
    "ttfb_count",
    "tokens_known_count",
    "tokeniser_count",
)

request_rollups = sa.Table(
    "request_rollups",
    metadata,
    sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("org_id", UUID(as_uuid=True), nullable=False),
    sa.Column("feature", sa.String(100), nullable=False),
    sa.Column("provider", sa.String(40), nullable=False),
    # The model the request was sent for (after any rule); '' when unknown.
    sa.Column("model", sa.String(200), nullable=False),
    # The model the provider's response named; '' when it named none.
    sa.Column("response_model", sa.String(200), nullable=False, server_default=""),
    # The request's X-Lectr-Task; '' when absent.
    sa.Column("task_type", sa.String(40), nullable=False, server_default=""),
    # 2xx, 3xx, 4xx, 5xx (0xx for requests that never got a status)
    sa.Column("status_class", sa.String(3), nullable=False),
    sa.Column("request_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("error_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("streaming_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cost_usd", sa.Numeric(20, 8), nullable=False, server_default="0"),
    # Requests whose model had no price (their cost is not in cost_usd).
    sa.Column("unpriced_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("latency_ms_sum", sa.Float, nullable=False, server_default="0"),
    sa.Column("latency_ms_max", sa.Float, nullable=False, server_default="0"),
    sa.Column("ttfb_ms_sum", sa.Float, nullable=False, server_default="0"),
    sa.Column("ttfb_count", sa.BigInteger, nullable=False, server_default="0"),
    # Requests whose token counts are known (reported by the provider or counted).
    sa.Column("tokens_known_count", sa.BigInteger, nullable=False, server_default="0"),
    # Requests whose tokens the consumer's tokeniser counted (estimates).
    sa.Column("tokeniser_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("latency_histogram", ARRAY(sa.BigInteger), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.PrimaryKeyConstraint(*ROLLUP_KEYS),
    sa.Index(None, "org_id", "bucket_start"),
)

dashboard_summaries = sa.Table(
    "dashboard_summaries",
    metadata,
    sa.Column("org_id", UUID(as_uuid=True), nullable=False),
    # 1h, 24h, 7d, 30d
    sa.Column("period", sa.String(10), nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("data", JSONB, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.PrimaryKeyConstraint("org_id", "period"),
)

anomalies = sa.Table(
    "anomalies",
    metadata,
    _id(),
    _org_fk(),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("severity", sa.String(10), nullable=False),
    sa.Column("status", sa.String(10), nullable=False, server_default="open"),
    sa.Column("feature", sa.String(100), nullable=True),
    sa.Column("provider", sa.String(40), nullable=True),
    sa.Column("model", sa.String(200), nullable=True),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("observed", sa.Float, nullable=False),
    sa.Column("baseline", sa.Float, nullable=True),
    # The baseline's standard deviation (after the floor on it).
    sa.Column("baseline_stddev", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    # Webhook URLs this anomaly was delivered to (each is sent once).
    sa.Column(
        "webhooks_sent", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")
    ),
    sa.CheckConstraint(f"kind IN {ANOMALY_KINDS!r}", name="kind"),
    sa.CheckConstraint("severity IN ('warning', 'critical')", name="severity"),
    sa.CheckConstraint(f"status IN {ANOMALY_STATUSES!r}", name="status"),
    sa.Index(None, "org_id", "detected_at"),
    # One open anomaly per org x feature x kind (feature NULL: the org overall).
    sa.Index(
        "uq_anomalies_open_episode",
        "org_id",
        "feature",
        "kind",
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
        postgresql_nulls_not_distinct=True,
    ),
)

recommendations = sa.Table(
    "recommendations",
    metadata,
    _id(),
    _org_fk(),
    sa.Column("feature", sa.String(100), nullable=False),
    sa.Column("task_type", sa.String(40), nullable=True),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("current_model", sa.String(200), nullable=False),
    sa.Column("recommended_model", sa.String(200), nullable=False),
    sa.Column("steps", sa.SmallInteger, nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_count", sa.BigInteger, nullable=False),
    sa.Column("current_cost_usd", sa.Numeric(20, 8), nullable=False),
    sa.Column("projected_cost_usd", sa.Numeric(20, 8), nullable=False),
    sa.Column("projected_savings_usd", sa.Numeric(20, 8), nullable=False),
    sa.Column("rationale", sa.Text, nullable=False),
    # high | medium
    sa.Column("confidence", sa.String(10), nullable=False, server_default="medium"),
    # The evidence: the signals the recommendation was made on.
    sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("status", sa.String(12), nullable=False, server_default="open"),
    _created_at(),
    _updated_at(),
    sa.CheckConstraint(f"status IN {RECOMMENDATION_STATUSES!r}", name="status"),
    sa.CheckConstraint(f"confidence IN {CONFIDENCES!r}", name="confidence"),
    sa.Index(None, "org_id", "status"),
    sa.UniqueConstraint("org_id", "feature", "provider", "current_model", "recommended_model"),
)

model_pricing = sa.Table(
    "model_pricing",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    # The price applies to requests made at or after this instant, until the next version.
    sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
    # USD per million tokens.
    sa.Column("input_per_mtok", sa.Numeric(14, 6), nullable=False),
    sa.Column("output_per_mtok", sa.Numeric(14, 6), nullable=False),
    sa.Column("cached_input_per_mtok", sa.Numeric(14, 6), nullable=True),
    sa.Column("source", sa.Text, nullable=False),
    _created_at(),
    sa.UniqueConstraint("provider", "model", "effective_from"),
    sa.CheckConstraint(
        "input_per_mtok >= 0 AND output_per_mtok >= 0 "
        "AND (cached_input_per_mtok IS NULL OR cached_input_per_mtok >= 0)",
        name="prices_not_negative",
    ),
)

model_downgrades = sa.Table(
    "model_downgrades",
    metadata,
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("target_model", sa.String(200), nullable=False),
    # 1 = the next cheaper tier, 2 = two tiers down, ...
    sa.Column("steps", sa.SmallInteger, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("provider", "model", "target_model"),
    sa.CheckConstraint("steps >= 1", name="steps_positive"),
)

pipeline_health = sa.Table(
    "pipeline_health",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    # proxy | consumer
    sa.Column("component", sa.String(20), nullable=False),
    sa.Column("instance", sa.String(200), nullable=False),
    sa.Column("buffer_depth", sa.Integer, nullable=True),
    sa.Column("events_published", sa.BigInteger, nullable=True),
    sa.Column("events_dropped", sa.BigInteger, nullable=True),
    sa.Column("publish_failures", sa.BigInteger, nullable=True),
    # Age of the oldest event not yet stored, measured by the consumer.
    sa.Column("ingest_lag_ms", sa.Float, nullable=True),
    sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Index(None, "component", "instance", "recorded_at"),
)

# Who changed what through the management API. No foreign key on org_id: deleting an
# organisation keeps its audit trail. ``changes`` holds the changed fields, never
# secrets or keys.
audit_log = sa.Table(
    "audit_log",
    metadata,
    _id(),
    sa.Column("org_id", UUID(as_uuid=True), nullable=True),
    # "operator" or "user:<email or subject>"
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("object_type", sa.String(40), nullable=False),
    sa.Column("object_id", sa.Text, nullable=True),
    sa.Column("changes", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    _created_at(),
    sa.Index(None, "org_id", "created_at"),
)

scheduler_runs = sa.Table(
    "scheduler_runs",
    metadata,
    # One row per job and tick: the primary key is what makes a tick run once across
    # every scheduler instance.
    sa.Column("job", sa.String(40), nullable=False),
    sa.Column("tick_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("instance", sa.String(200), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    # running | ok | failed
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("summary", sa.Text, nullable=True),
    sa.PrimaryKeyConstraint("job", "tick_start"),
    sa.CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
)

# One row per applied migration, written by schema/migrations/env.py: the oldest
# release head whose code still runs against the schema that migration left. Processes
# of an older release read it to decide whether they may run (lectr.schema_check).
schema_compat = sa.Table(
    "schema_compat",
    metadata,
    sa.Column("revision", sa.Text, primary_key=True),
    sa.Column("oldest_compatible", sa.Text, nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)
