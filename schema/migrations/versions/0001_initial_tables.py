"""Initial tables, with request_logs partitioned by day.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from schema import partitions

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Daily partitions created with the table: back far enough for a replay of the
# stream's default retention (7 days), ahead far enough to outlast a stopped scheduler.
DAYS_BEHIND = 7
DAYS_AHEAD = 14


def upgrade() -> None:
    op.create_table(
        "dashboard_summaries",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("org_id", "period", name=op.f("pk_dashboard_summaries")),
    )
    op.create_table(
        "model_downgrades",
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("target_model", sa.String(length=200), nullable=False),
        sa.Column("steps", sa.SmallInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.CheckConstraint("steps >= 1", name=op.f("ck_model_downgrades_steps_positive")),
        sa.PrimaryKeyConstraint(
            "provider", "model", "target_model", name=op.f("pk_model_downgrades")
        ),
    )
    op.create_table(
        "model_pricing",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("input_per_mtok", sa.Numeric(precision=14, scale=6), nullable=False),
        sa.Column("output_per_mtok", sa.Numeric(precision=14, scale=6), nullable=False),
        sa.Column("cached_input_per_mtok", sa.Numeric(precision=14, scale=6), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "input_per_mtok >= 0 AND output_per_mtok >= 0 "
            "AND (cached_input_per_mtok IS NULL OR cached_input_per_mtok >= 0)",
            name=op.f("ck_model_pricing_prices_not_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_pricing")),
        sa.UniqueConstraint(
            "provider",
            "model",
            "effective_from",
            name=op.f("uq_model_pricing_provider_model_effective_from"),
        ),
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column("p95_latency_threshold_ms", sa.Integer(), server_default="5000", nullable=False),
        sa.Column("rate_limit_rpm", sa.Integer(), nullable=True),
        sa.Column("max_concurrent_streams", sa.Integer(), nullable=True),
        sa.Column(
            "alert_recipients",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('active', 'disabled')", name=op.f("ck_organizations_status")
        ),
        sa.CheckConstraint(
            "max_concurrent_streams IS NULL OR max_concurrent_streams > 0",
            name=op.f("ck_organizations_streams_positive"),
        ),
        sa.CheckConstraint(
            "p95_latency_threshold_ms > 0", name=op.f("ck_organizations_p95_threshold_positive")
        ),
        sa.CheckConstraint(
            "rate_limit_rpm IS NULL OR rate_limit_rpm > 0",
            name=op.f("ck_organizations_rpm_positive"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("name", name=op.f("uq_organizations_name")),
    )
    op.create_table(
        "pipeline_health",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("component", sa.String(length=20), nullable=False),
        sa.Column("instance", sa.String(length=200), nullable=False),
        sa.Column("buffer_depth", sa.Integer(), nullable=True),
        sa.Column("events_published", sa.BigInteger(), nullable=True),
        sa.Column("events_dropped", sa.BigInteger(), nullable=True),
        sa.Column("publish_failures", sa.BigInteger(), nullable=True),
        sa.Column("ingest_lag_ms", sa.Float(), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_health")),
    )
    op.create_index(
        op.f("ix_pipeline_health_component_instance_recorded_at"),
        "pipeline_health",
        ["component", "instance", "recorded_at"],
        unique=False,
    )
    op.create_table(
        "request_logs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("api_key_id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column(
            "provider_unknown", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("requested_model", sa.String(length=200), nullable=True),
        sa.Column("actual_model", sa.String(length=200), nullable=True),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("streaming", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("error_category", sa.String(length=40), nullable=True),
        sa.Column("error_source", sa.String(length=20), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttfb_ms", sa.Float(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("token_source", sa.String(length=20), nullable=True),
        sa.Column("cost_usd", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("feature", sa.String(length=100), server_default="untagged", nullable=False),
        sa.Column("task_type", sa.String(length=40), nullable=True),
        sa.Column("rule_id", sa.UUID(), nullable=True),
        sa.Column("proxy_instance", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", "created_at", name=op.f("pk_request_logs")),
        postgresql_partition_by="RANGE (created_at)",
    )
    op.create_index(
        op.f("ix_request_logs_org_id_created_at"),
        "request_logs",
        ["org_id", "created_at"],
        unique=False,
    )
    # The default partition keeps inserts from failing outside the daily partitions;
    # the partition upkeep job creates days ahead from then on.
    op.execute(partitions.create_default_partition_sql())
    today = datetime.now(UTC).date()
    for day in partitions.days_to_cover(today, DAYS_AHEAD, DAYS_BEHIND):
        op.execute(partitions.create_partition_sql(day))
    op.create_table(
        "request_rollups",
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("feature", sa.String(length=100), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("status_class", sa.String(length=3), nullable=False),
        sa.Column("request_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("error_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("streaming_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "cost_usd", sa.Numeric(precision=20, scale=8), server_default="0", nullable=False
        ),
        sa.Column("unpriced_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), server_default="0", nullable=False),
        sa.Column("latency_ms_max", sa.Float(), server_default="0", nullable=False),
        sa.Column("ttfb_ms_sum", sa.Float(), server_default="0", nullable=False),
        sa.Column("ttfb_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_histogram", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "bucket_start",
            "org_id",
            "feature",
            "provider",
            "model",
            "status_class",
            name=op.f("pk_request_rollups"),
        ),
    )
    op.create_index(
        op.f("ix_request_rollups_org_id_bucket_start"),
        "request_rollups",
        ["org_id", "bucket_start"],
        unique=False,
    )
    op.create_table(
        "anomalies",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="open", nullable=False),
        sa.Column("feature", sa.String(length=100), nullable=True),
        sa.Column("provider", sa.String(length=40), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("observed", sa.Float(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "detected_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('cost', 'latency', 'error_rate', 'traffic', 'model_drift')",
            name=op.f("ck_anomalies_kind"),
        ),
        sa.CheckConstraint(
            "severity IN ('warning', 'critical')", name=op.f("ck_anomalies_severity")
        ),
        sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f("ck_anomalies_status")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_anomalies_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomalies")),
    )
    op.create_index(
        op.f("ix_anomalies_org_id_detected_at"),
        "anomalies",
        ["org_id", "detected_at"],
        unique=False,
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("display_prefix", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_api_keys_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_org_id"), "api_keys", ["org_id"], unique=False)
    op.create_table(
        "org_members",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=20), server_default="member", nullable=False),
        sa.Column("oidc_subject", sa.String(length=255), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('owner', 'admin', 'member', 'viewer')", name=op.f("ck_org_members_role")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_org_members_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_members")),
        sa.UniqueConstraint("org_id", "email", name=op.f("uq_org_members_org_id_email")),
    )
    op.create_table(
        "provider_configs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=True),
        sa.Column("api_version", sa.String(length=40), nullable=True),
        sa.Column(
            "deployments",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_provider_configs_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_configs")),
        sa.UniqueConstraint("org_id", "provider", name=op.f("uq_provider_configs_org_id_provider")),
    )
    op.create_table(
        "recommendations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("feature", sa.String(length=100), nullable=False),
        sa.Column("task_type", sa.String(length=40), nullable=True),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("current_model", sa.String(length=200), nullable=False),
        sa.Column("recommended_model", sa.String(length=200), nullable=False),
        sa.Column("steps", sa.SmallInteger(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_count", sa.BigInteger(), nullable=False),
        sa.Column("current_cost_usd", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("projected_cost_usd", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("projected_savings_usd", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), server_default="open", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('open', 'dismissed', 'applied')", name=op.f("ck_recommendations_status")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_recommendations_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendations")),
    )
    op.create_index(
        op.f("ix_recommendations_org_id_status"),
        "recommendations",
        ["org_id", "status"],
        unique=False,
    )
    op.create_table(
        "routing_rules",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("match_feature", sa.String(length=100), nullable=True),
        sa.Column("match_task", sa.String(length=40), nullable=True),
        sa.Column("match_provider", sa.String(length=40), nullable=True),
        sa.Column("match_model", sa.String(length=200), nullable=True),
        sa.Column("target_provider", sa.String(length=40), nullable=True),
        sa.Column("target_model", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "target_provider IS NOT NULL OR target_model IS NOT NULL",
            name=op.f("ck_routing_rules_has_action"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_routing_rules_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_rules")),
    )
    op.create_index(
        op.f("ix_routing_rules_org_id_priority"),
        "routing_rules",
        ["org_id", "priority"],
        unique=False,
    )
    op.create_table(
        "org_invites",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=20), server_default="member", nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('owner', 'admin', 'member', 'viewer')", name=op.f("ck_org_invites_role")
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"],
            ["org_members.id"],
            name=op.f("fk_org_invites_invited_by_org_members"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_org_invites_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_invites")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_org_invites_token_hash")),
    )
    op.create_index(op.f("ix_org_invites_org_id"), "org_invites", ["org_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_org_invites_org_id"), table_name="org_invites")
    op.drop_table("org_invites")
    op.drop_index(op.f("ix_routing_rules_org_id_priority"), table_name="routing_rules")
    op.drop_table("routing_rules")
    op.drop_index(op.f("ix_recommendations_org_id_status"), table_name="recommendations")
    op.drop_table("recommendations")
    op.drop_table("provider_configs")
    op.drop_table("org_members")
    op.drop_index(op.f("ix_api_keys_org_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index(op.f("ix_anomalies_org_id_detected_at"), table_name="anomalies")
    op.drop_table("anomalies")
    op.drop_index(op.f("ix_request_rollups_org_id_bucket_start"), table_name="request_rollups")
    op.drop_table("request_rollups")
    op.drop_index(op.f("ix_request_logs_org_id_created_at"), table_name="request_logs")
    op.drop_table("request_logs")
    op.drop_index(
        op.f("ix_pipeline_health_component_instance_recorded_at"), table_name="pipeline_health"
    )
    op.drop_table("pipeline_health")
    op.drop_table("organizations")
    op.drop_table("model_pricing")
    op.drop_table("model_downgrades")
    op.drop_table("dashboard_summaries")
