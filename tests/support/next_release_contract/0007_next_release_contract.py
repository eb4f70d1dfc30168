"""The next release's migration, as the tests play it: a contract migration.

It drops something the code of 0006 still uses (``audit_log.object_id``), so it
declares itself compatible only with its own release: older processes must refuse it.

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
# Contract: only the code of this release (0007) runs against it.
oldest_compatible: str = "0007"


def upgrade() -> None:
    op.drop_column("audit_log", "object_id")


def downgrade() -> None:
    op.add_column("audit_log", sa.Column("object_id", sa.Text(), nullable=True))
