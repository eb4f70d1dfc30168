"""The next release's migration, as the tests play it: an expand migration.

A nullable column without a default on the partitioned ``request_logs`` (a catalog
change only) and a new small table: the code of 0006 runs on unchanged.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-16
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand: the previous release (head 0006) still runs against it.
oldest_compatible: str = "0006"


def upgrade() -> None:
    op.add_column("request_logs", sa.Column("region", sa.Text(), nullable=True))
    op.create_table(
        "regions",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_regions")),
    )


def downgrade() -> None:
    op.drop_table("regions")
    op.drop_column("request_logs", "region")
