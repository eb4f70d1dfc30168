"""request_logs.skipped_rule_id: a matching rule that changes the provider, skipped
because the request carried no key for the target provider.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Adding a nullable column with no default changes only the catalog, on every partition.
    op.add_column("request_logs", sa.Column("skipped_rule_id", sa.UUID(), nullable=True))


def downgrade() -> None:
    op.drop_column("request_logs", "skipped_rule_id")
