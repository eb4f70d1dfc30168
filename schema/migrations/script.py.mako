"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}
# The oldest release head whose code still runs against the schema this migration
# leaves (recorded in schema_compat; see schema/migrations/README.md). An expand
# migration (add a nullable column, a table, an index) names the previous release's
# head; a contract migration (drop, rename, retype) names the first release whose code
# no longer uses what it removes. Its own id (the safe default: older processes
# refuse to start) means "only this release's code".
oldest_compatible: str = ${repr(up_revision)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
