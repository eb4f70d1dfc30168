"""Schema compatibility: which releases' code still runs against the schema.

``schema/migrations/env.py`` writes one row per applied migration (its
``oldest_compatible`` declaration), so a process of an older release, which lacks the
newer migration files, can read whether it may run (see ``lectr.schema_check``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand: a new table that the code of 0005 never reads, so it runs on as before.
oldest_compatible: str = "0005"


def upgrade() -> None:
    op.create_table(
        "schema_compat",
        sa.Column("revision", sa.Text(), nullable=False),
        sa.Column("oldest_compatible", sa.Text(), nullable=False),
        sa.Column(
            "applied_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("revision", name=op.f("pk_schema_compat")),
    )


def downgrade() -> None:
    op.drop_table("schema_compat")
