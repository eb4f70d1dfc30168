"""The cold path: the model that answered, rollups per task type and answering model,
anomaly and recommendation evidence, alert webhooks, and one run per scheduler tick.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EMPTY_TEXT_ARRAY = sa.text("'{}'::text[]")
_OLD_ROLLUP_KEY = ["bucket_start", "org_id", "feature", "provider", "model", "status_class"]
_NEW_ROLLUP_KEY = [*_OLD_ROLLUP_KEY[:5], "response_model", "task_type", "status_class"]


def upgrade() -> None:
    # A nullable column without a default changes only the catalog, on every partition.
    op.add_column("request_logs", sa.Column("response_model", sa.String(200), nullable=True))

    # Existing rollup rows are the rows of an unknown answering model and no task type.
    op.add_column(
        "request_rollups",
        sa.Column("response_model", sa.String(200), nullable=False, server_default=""),
    )
    op.add_column(
        "request_rollups",
        sa.Column("task_type", sa.String(40), nullable=False, server_default=""),
    )
    for name in ("tokens_known_count", "tokeniser_count"):
        op.add_column(
            "request_rollups",
            sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"),
        )
    op.drop_constraint(op.f("pk_request_rollups"), "request_rollups", type_="primary")
    op.create_primary_key(op.f("pk_request_rollups"), "request_rollups", _NEW_ROLLUP_KEY)

    op.add_column(
        "organizations",
        sa.Column(
            "alert_webhooks",
            postgresql.ARRAY(sa.Text()),
            nullable=False,
            server_default=_EMPTY_TEXT_ARRAY,
        ),
    )

    op.add_column("anomalies", sa.Column("baseline_stddev", sa.Float(), nullable=True))
    op.add_column(
        "anomalies",
        sa.Column(
            "webhooks_sent",
            postgresql.ARRAY(sa.Text()),
            nullable=False,
            server_default=_EMPTY_TEXT_ARRAY,
        ),
    )
    op.drop_constraint(op.f("ck_anomalies_status"), "anomalies", type_="check")
    op.create_check_constraint(
        op.f("ck_anomalies_status"), "anomalies", "status IN ('open', 'resolved', 'dismissed')"
    )
    op.create_index(
        op.f("uq_anomalies_open_episode"),
        "anomalies",
        ["org_id", "feature", "kind"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
        postgresql_nulls_not_distinct=True,
    )

    op.add_column(
        "recommendations",
        sa.Column("confidence", sa.String(10), nullable=False, server_default="medium"),
    )
    op.add_column(
        "recommendations",
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
    )
    op.drop_constraint(op.f("ck_recommendations_status"), "recommendations", type_="check")
    op.create_check_constraint(
        op.f("ck_recommendations_status"),
        "recommendations",
        "status IN ('open', 'dismissed', 'applied', 'retired')",
    )
    op.create_check_constraint(
        op.f("ck_recommendations_confidence"), "recommendations", "confidence IN ('high', 'medium')"
    )
    op.create_unique_constraint(
        op.f("uq_recommendations_org_id_feature_provider_current_model_recommended_model"),
        "recommendations",
        ["org_id", "feature", "provider", "current_model", "recommended_model"],
    )

    op.create_table(
        "scheduler_runs",
        sa.Column("job", sa.String(40), nullable=False),
        sa.Column("tick_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("instance", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'ok', 'failed')", name=op.f("ck_scheduler_runs_status")
        ),
        sa.PrimaryKeyConstraint("job", "tick_start", name=op.f("pk_scheduler_runs")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_runs")
    op.drop_constraint(
        op.f("uq_recommendations_org_id_feature_provider_current_model_recommended_model"),
        "recommendations",
        type_="unique",
    )
    op.drop_constraint(op.f("ck_recommendations_confidence"), "recommendations", type_="check")
    op.execute("UPDATE recommendations SET status = 'dismissed' WHERE status = 'retired'")
    op.drop_constraint(op.f("ck_recommendations_status"), "recommendations", type_="check")
    op.create_check_constraint(
        op.f("ck_recommendations_status"),
        "recommendations",
        "status IN ('open', 'dismissed', 'applied')",
    )
    op.drop_column("recommendations", "details")
    op.drop_column("recommendations", "confidence")
    op.drop_index(op.f("uq_anomalies_open_episode"), table_name="anomalies")
    op.execute("UPDATE anomalies SET status = 'resolved' WHERE status = 'dismissed'")
    op.drop_constraint(op.f("ck_anomalies_status"), "anomalies", type_="check")
    op.create_check_constraint(
        op.f("ck_anomalies_status"), "anomalies", "status IN ('open', 'resolved')"
    )
    op.drop_column("anomalies", "webhooks_sent")
    op.drop_column("anomalies", "baseline_stddev")
    op.drop_column("organizations", "alert_webhooks")
    # Fold rows that differ only in the new key columns back into one row per old key.
    op.execute(
        f"""
        CREATE TEMP TABLE rollups_old AS
        SELECT {", ".join(_OLD_ROLLUP_KEY)},
               sum(request_count) AS request_count, sum(error_count) AS error_count,
               sum(streaming_count) AS streaming_count, sum(input_tokens) AS input_tokens,
               sum(output_tokens) AS output_tokens, sum(cached_tokens) AS cached_tokens,
               sum(cost_usd) AS cost_usd, sum(unpriced_count) AS unpriced_count,
               sum(latency_ms_sum) AS latency_ms_sum, max(latency_ms_max) AS latency_ms_max,
               sum(ttfb_ms_sum) AS ttfb_ms_sum, sum(ttfb_count) AS ttfb_count,
               (SELECT array_agg(s ORDER BY i) FROM (
                    SELECT i, sum(v) AS s
                    FROM request_rollups r2, unnest(r2.latency_histogram) WITH ORDINALITY h(v, i)
                    WHERE {" AND ".join(f"r2.{c} = r.{c}" for c in _OLD_ROLLUP_KEY)}
                    GROUP BY i) per_bucket) AS latency_histogram,
               max(updated_at) AS updated_at
        FROM request_rollups r
        GROUP BY {", ".join(_OLD_ROLLUP_KEY)}
        """
    )
    op.execute("DELETE FROM request_rollups")
    op.drop_constraint(op.f("pk_request_rollups"), "request_rollups", type_="primary")
    for name in ("tokeniser_count", "tokens_known_count", "task_type", "response_model"):
        op.drop_column("request_rollups", name)
    op.execute("INSERT INTO request_rollups SELECT * FROM rollups_old")
    op.execute("DROP TABLE rollups_old")
    op.create_primary_key(op.f("pk_request_rollups"), "request_rollups", _OLD_ROLLUP_KEY)
    op.drop_column("request_logs", "response_model")
