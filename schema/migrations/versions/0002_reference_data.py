"""Load model prices and downgrade paths from schema/reference (reviewed data files).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schema.reference_data import load_downgrades, load_pricing
from schema.tables import model_downgrades, model_pricing

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRICING_FILE = "pricing.json"
DOWNGRADES_FILE = "downgrades.json"
DOWNGRADES_SOURCE = f"schema/reference/{DOWNGRADES_FILE}"


def upgrade() -> None:
    pricing = load_pricing(PRICING_FILE)
    downgrades = load_downgrades(DOWNGRADES_FILE, pricing=pricing)
    op.bulk_insert(model_pricing, pricing.rows())
    op.bulk_insert(model_downgrades, downgrades.rows(DOWNGRADES_SOURCE))


def downgrade() -> None:
    pricing = load_pricing(PRICING_FILE)
    for price in pricing.prices:
        op.execute(
            sa.delete(model_pricing).where(
                model_pricing.c.provider == price.provider,
                model_pricing.c.model == price.model,
                model_pricing.c.effective_from == pricing.effective_from,
            )
        )
    op.execute(sa.delete(model_downgrades).where(model_downgrades.c.source == DOWNGRADES_SOURCE))
